"""RM training: learning happens, saved models reload and score the same, bad data is caught."""

import json

import datasets
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from laser.models import tiny_gpt2_config
from laser.rewards import HFRewardModel, pairwise_accuracy
from laser.rewards.data import preference_pairs, segment_examples
from laser.rewards.toy import toy_preference_rows, toy_segment_rows
from laser.rewards.train import train_reward_model

TRAIN = dict(epochs=3, lr=1e-3, batch_size=32, max_length=64, progress=False)


def _fresh(tok, seed=0):
    torch.manual_seed(seed)
    cfg = tiny_gpt2_config(tok, n_layer=1, n_head=2, n_embd=32, n_positions=64)
    return AutoModelForSequenceClassification.from_config(cfg)


def _heldout_accuracy(rm, rows):
    prompts = [r["prompt"] for r in rows]
    chosen = rm.score(prompts, [r["chosen"] for r in rows])
    rejected = rm.score(prompts, [r["rejected"] for r in rows])
    return pairwise_accuracy(chosen, rejected)


def test_bradley_terry_training_learns_and_round_trips(char_tok, tmp_path):
    model = _fresh(char_tok)
    heldout = toy_preference_rows(300, seed=1)
    before = _heldout_accuracy(HFRewardModel(model, char_tok), heldout)
    metrics = train_reward_model(
        model, char_tok, toy_preference_rows(600, seed=0), eval_dataset=heldout, **TRAIN
    )
    assert metrics["eval_accuracy"] >= 0.95 > before + 0.2
    assert metrics["train_examples"] == 600 and metrics["time_s"] > 0

    model.save_pretrained(tmp_path / "rm")
    char_tok.save_pretrained(tmp_path / "rm")
    reloaded = HFRewardModel(tmp_path / "rm")
    in_memory = HFRewardModel(model, char_tok)
    probe_p, probe_c = ["word 5: "] * 2, ["aeiouxa", "bcdfgxa"]
    torch.testing.assert_close(reloaded.score(probe_p, probe_c), in_memory.score(probe_p, probe_c))
    assert _heldout_accuracy(reloaded, heldout) == pytest.approx(metrics["eval_accuracy"])


def test_margin_column_is_used(char_tok):
    rows = [dict(r, margin=100.0) for r in toy_preference_rows(64)]
    plain = train_reward_model(
        _fresh(char_tok), char_tok, toy_preference_rows(64), **dict(TRAIN, epochs=1)
    )
    margin = train_reward_model(_fresh(char_tok), char_tok, rows, **dict(TRAIN, epochs=1))
    assert margin["loss"] > plain["loss"] + 50  # -logsigmoid(d - 100) ~ 100 - d


def test_segment_regression_training_learns(char_tok):
    rows, heldout = toy_segment_rows(400, seed=0), toy_segment_rows(100, seed=1)
    targets = torch.tensor([s for r in heldout for s in r["scores"]])
    baseline_mse = ((targets - targets.mean()) ** 2).mean().item()  # predict the mean
    metrics = train_reward_model(
        _fresh(char_tok),
        char_tok,
        rows,
        loss="segment_regression",
        eval_dataset=heldout,
        **dict(TRAIN, epochs=6),
    )
    assert metrics["eval_loss"] < 0.5 * baseline_mse


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_every_optimizer_reduces_the_loss(char_tok, optimizer):
    rows = toy_preference_rows(96)
    lr = 0.05 if optimizer == "sgd" else 1e-3
    first = train_reward_model(
        _fresh(char_tok), char_tok, rows, optimizer=optimizer, **dict(TRAIN, epochs=1, lr=lr)
    )
    more = train_reward_model(
        _fresh(char_tok), char_tok, rows, optimizer=optimizer, **dict(TRAIN, epochs=4, lr=lr)
    )
    assert more["loss"] < first["loss"]


def test_training_is_seeded(char_tok):
    rows = toy_preference_rows(64)
    a = train_reward_model(_fresh(char_tok), char_tok, rows, seed=3, **dict(TRAIN, epochs=1))
    b = train_reward_model(_fresh(char_tok), char_tok, rows, seed=3, **dict(TRAIN, epochs=1))
    assert a["loss"] == b["loss"]


def test_data_sources_jsonl_parquet_dataset_list(tmp_path):
    rows = toy_preference_rows(5)
    jsonl = tmp_path / "prefs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parquet = tmp_path / "prefs.parquet"
    datasets.Dataset.from_list(rows).to_parquet(parquet)
    expected = preference_pairs(rows)
    for source in (jsonl, str(jsonl), parquet, datasets.Dataset.from_list(rows)):
        assert preference_pairs(source) == expected


def test_missing_columns_lists_found_and_expected():
    with pytest.raises(ValueError) as info:
        preference_pairs([{"prompt": "p", "good": "a", "rejected": "b"}])
    message = str(info.value)
    assert "missing column(s) ['chosen']" in message
    assert "found ['good', 'prompt', 'rejected']" in message and "expected" in message


def test_empty_strings_and_bad_margins_name_the_rows():
    rows = toy_preference_rows(4)
    rows[1]["chosen"] = ""
    rows[3]["rejected"] = "   "
    with pytest.raises(ValueError, match=r"empty 'chosen' in row\(s\) 1; empty 'rejected' in row"):
        preference_pairs(rows)
    with pytest.raises(ValueError, match="non-finite 'margin'"):
        preference_pairs([dict(r, margin=float("nan")) for r in toy_preference_rows(2)])


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "a", \n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        preference_pairs(path)
    with pytest.raises(FileNotFoundError):
        preference_pairs(tmp_path / "missing.jsonl")


def test_bad_segment_rows():
    with pytest.raises(ValueError, match="missing column"):
        segment_examples([{"segments": ["a"]}])
    with pytest.raises(ValueError, match="length differs"):
        segment_examples([{"segments": ["a", "b"], "scores": [1.0]}])
    with pytest.raises(ValueError, match="non-finite"):
        segment_examples([{"segments": ["a"], "scores": [float("inf")]}])


def test_overlong_rows_truncate_or_drop_and_are_reported(char_tok, caplog):
    rows = toy_preference_rows(20)
    rows[0]["chosen"] = "a" * 200
    rows[1]["rejected"] = "b" * 200
    kwargs = dict(TRAIN, epochs=1, max_length=32)
    truncated = train_reward_model(_fresh(char_tok), char_tok, rows, **kwargs)
    assert truncated["truncated"] == 2 and truncated["dropped"] == 0
    dropped = train_reward_model(_fresh(char_tok), char_tok, rows, overlong="drop", **kwargs)
    assert dropped["dropped"] == 2 and dropped["train_examples"] == 18
    assert "2 examples dropped" in caplog.text
    with pytest.raises(ValueError, match="no training example fits"):
        train_reward_model(_fresh(char_tok), char_tok, rows[:2], overlong="drop", **kwargs)


def test_bad_training_arguments(char_tok):
    rows = toy_preference_rows(4)
    with pytest.raises(ValueError, match="loss must be"):
        train_reward_model(_fresh(char_tok), char_tok, rows, loss="hinge")
    with pytest.raises(ValueError, match="optimizer must be"):
        train_reward_model(_fresh(char_tok), char_tok, rows, optimizer="lion", progress=False)


def test_rm_trained_by_trl_reward_trainer_scores_the_same_way(char_tok, tmp_path):
    """TRL tokenises prompt + chosen + EOS; HFRewardModel must read the same tokens."""
    from trl import RewardConfig, RewardTrainer

    rows = toy_preference_rows(32)
    args = RewardConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=3,
        per_device_train_batch_size=8,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        max_length=64,
        disable_tqdm=True,
    )
    trainer = RewardTrainer(
        model=_fresh(char_tok),
        args=args,
        processing_class=char_tok,
        train_dataset=datasets.Dataset.from_list(rows),
    )
    trainer.train()
    trainer.model.save_pretrained(tmp_path / "rm")
    char_tok.save_pretrained(tmp_path / "rm")
    rm = HFRewardModel(tmp_path / "rm")
    model = rm.model
    for i in range(3):
        ids = torch.tensor([trainer.train_dataset[i]["chosen_ids"]])
        with torch.no_grad():
            trl_score = model(input_ids=ids).logits.item()
        ours = rm.score([rows[i]["prompt"]], [rows[i]["chosen"]]).item()
        assert ours == pytest.approx(trl_score, abs=1e-5)


@pytest.mark.parametrize("margin", ["abc", [1.0], None])
def test_unusable_margins_name_the_row(margin):
    rows = toy_preference_rows(3)
    rows[2]["margin"] = margin
    rows[0]["margin"] = rows[1]["margin"] = 1.0
    with pytest.raises(ValueError, match=r"'margin'.* row\(?s?\)? 2"):
        preference_pairs(rows)


def test_eval_set_that_is_entirely_too_long_is_reported(char_tok):
    evals = [dict(r, chosen="a" * 200) for r in toy_preference_rows(4)]
    metrics = train_reward_model(
        _fresh(char_tok),
        char_tok,
        toy_preference_rows(8),
        eval_dataset=evals,
        overlong="drop",
        **dict(TRAIN, epochs=1),
    )
    assert metrics["eval_examples"] == 0 and "eval_accuracy" not in metrics


# --- issue 17.7-8: columns are the union over rows; unreadable files are named -------------


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "drop, line, expected",
    [
        ("prompt", 1, "missing 'prompt' in line(s) 1 (present in 3 other rows)"),
        ("chosen", 1, "missing 'chosen' in line(s) 1"),  # was: no 'chosen' column at all
        ("chosen", 3, "missing 'chosen' in line(s) 3"),  # was: non-string 'chosen' in row 2
        ("prompt", 4, "missing 'prompt' in line(s) 4"),
    ],
)
def test_a_row_missing_a_column_is_named_by_its_line(tmp_path, drop, line, expected):
    rows = toy_preference_rows(4)
    del rows[line - 1][drop]
    with pytest.raises(ValueError) as info:
        preference_pairs(_jsonl(tmp_path / "p.jsonl", rows))
    assert str(tmp_path / "p.jsonl") in str(info.value) and expected in str(info.value)


def test_margins_and_segment_prompts_missing_from_some_rows_are_errors(tmp_path):
    rows = [dict(r, margin=1.0) for r in toy_preference_rows(3)]
    del rows[0]["margin"]  # the whole column used to vanish: margins silently ignored
    with pytest.raises(ValueError, match=r"missing 'margin' in line\(s\) 1\b"):
        preference_pairs(_jsonl(tmp_path / "m.jsonl", rows))
    segments = toy_segment_rows(3)
    del segments[0]["prompt"]
    with pytest.raises(ValueError, match=r"missing 'prompt' in row\(s\) 0 .*counted from 0"):
        segment_examples(segments)
    assert len(preference_pairs([{"chosen": "a", "rejected": "b"}])) == 1  # absent everywhere: ok


def test_a_type_change_is_named_by_its_line(tmp_path):
    rows = toy_preference_rows(4)
    rows[2]["rejected"] = 7
    path = tmp_path / "p.jsonl"
    path.write_text("\n\n" + "".join(json.dumps(r) + "\n" for r in rows))  # row 2 on line 5
    with pytest.raises(ValueError, match=r"column 'rejected' in line 5 is number \(7\) but str"):
        preference_pairs(path)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.csv", "", "empty file"),
        ("header.csv", "prompt,chosen,rejected\n", "a header line but no data rows"),
        ("bad.json", '[{"chosen": "a", "rejected": "b"},\n {"chosen": "a" "x": 1}]', "line 2"),
        ("trunc.json", '{"chosen": ["a", "b"', "not valid JSON"),
        ("empty.json", "  \n", "empty file"),
        ("none.json", "[]", "no rows"),
        ("list.json", '[{"chosen": "a"}, "b"]', "element 1 is a str, not an object"),
        ("bad.parquet", "x", "cannot read"),
    ],
)
def test_unreadable_files_name_the_file_and_the_problem(tmp_path, name, content, expected):
    from laser.rewards.data import load_rows

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_rows(path)
    assert str(path) in str(info.value) and expected in str(info.value)
