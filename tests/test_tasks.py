"""Built-in domains and HF-style tasks: gold checkers, determinism, corruptions, loading."""

import json
import random

import pytest

from laser.tasks.base import Example, Task
from laser.tasks.corrupt import MALFORMED_ALPHABET, corrupt, longer_wrong, preference_rows
from laser.tasks.hf import GSM8KTask, MultipleChoiceTask, extract_number
from laser.tasks.synthetic import GENERATORS, Difficulty, SyntheticSuite, split_of

ALL = tuple(GENERATORS)

KNOWN = [  # (domain, prompt, right answer, wrong answers)
    ("add", "add 12+7=", "19", ["18", "20", "1 9"]),
    ("reverse", "rev cab=", "bac", ["cab", "ba", "bacx"]),
    ("sort", "sort 3142=", "1234", ["1243", "4321", "123"]),
    ("count", "count b abba=", "2", ["1", "3", "02x"]),
    ("upper", "up abcd=", "ABCD", ["abcd", "ABDC"]),
    ("max", "max 314159=", "9", ["5", "8", "99"]),
]


@pytest.mark.parametrize("domain,prompt,right,wrongs", KNOWN)
def test_checkers_on_known_answers(domain, prompt, right, wrongs):
    suite = SyntheticSuite(ALL)
    meta = {"answer": right, "domain": domain}
    assert suite.evaluate(prompt, right, meta) == 1.0
    assert suite.evaluate(prompt, f" {right}\nmore text", meta) == 1.0  # first line, stripped
    for wrong in wrongs:
        assert suite.evaluate(prompt, wrong, meta) == 0.0


@pytest.mark.parametrize("domain", ALL)
def test_generated_gold_answers_are_right(domain):
    suite = SyntheticSuite(ALL)
    for ex in suite.examples("train", 50, seed=3, domains=(domain,)):
        assert suite.evaluate(ex.prompt, ex.answer, ex.meta()) == 1.0
        body = ex.prompt.split(" ", 1)[1].rstrip("=")
        if domain == "reverse":
            assert ex.answer == body[::-1]
        if domain == "sort":
            assert ex.answer == "".join(sorted(body))
        if domain == "add":
            a, b = body.split("+")
            assert int(ex.answer) == int(a) + int(b)
        if domain == "count":
            target, s = body.split(" ")
            assert int(ex.answer) == s.count(target)
        if domain == "max":
            assert ex.answer == max(body)


def test_determinism_and_disjoint_splits():
    suite = SyntheticSuite()
    assert isinstance(suite, Task)
    assert suite.examples("train", 40, seed=1) == suite.examples("train", 40, seed=1)
    assert suite.examples("train", 40, seed=1) != suite.examples("train", 40, seed=2)
    train = {e.prompt for e in suite.examples("train", 500, seed=0)}
    evals = {e.prompt for e in suite.examples("eval", 200, seed=0)}
    assert not train & evals
    assert all(split_of(p) == "eval" for p in evals)
    domains = [e.domain for e in suite.examples("eval", 40, seed=0)]
    assert {domains.count(d) for d in suite.domains} == {10}  # balanced mix


def test_difficulty_knobs_change_the_prompts():
    easy = SyntheticSuite(("reverse",), Difficulty(reverse_len=2)).examples("train", 5)
    hard = SyntheticSuite(("reverse",), Difficulty(reverse_len=6)).examples("train", 5)
    assert all(len(e.answer) == 2 for e in easy) and all(len(e.answer) == 6 for e in hard)


def test_bad_suite_arguments():
    with pytest.raises(ValueError, match="unknown domain"):
        SyntheticSuite(("chess",))
    with pytest.raises(ValueError, match="split"):
        SyntheticSuite().examples("test", 3)


@pytest.mark.parametrize("domain", ALL)
def test_corruptions_are_wrong_and_longer_wrong_is_longer(domain):
    rng = random.Random(0)
    suite = SyntheticSuite(ALL)
    for ex in suite.examples("train", 40, seed=5, domains=(domain,)):
        bad = corrupt(rng, ex)
        assert bad != ex.answer and suite.evaluate(ex.prompt, bad, ex.meta()) == 0.0
        longer = longer_wrong(rng, ex)
        assert len(longer) > len(ex.answer)
        assert suite.evaluate(ex.prompt, longer, ex.meta()) == 0.0


def test_preference_rows_noise_and_bias_rates():
    examples = SyntheticSuite(("sort",)).examples("train", 2000, seed=0)
    clean = preference_rows(examples, seed=0)
    assert all(r["chosen"] == e.answer for r, e in zip(clean, examples))
    noisy = preference_rows(examples, seed=0, label_noise=0.3)
    flipped = sum(r["rejected"] == e.answer for r, e in zip(noisy, examples)) / 2000
    assert 0.26 < flipped < 0.34
    biased = preference_rows(examples, seed=0, length_bias=0.5)
    longer_wins = sum(len(r["chosen"]) > len(r["rejected"]) for r in biased) / 2000
    assert 0.46 < longer_wins < 0.54
    with pytest.raises(ValueError, match="label_noise"):
        preference_rows(examples, seed=0, label_noise=1.5)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_task_from_a_local_file(tmp_path):
    rows = [
        {"question": f"What is {i} + {i}?", "answer": f"{i}+{i}={2 * i}\n#### {2 * i:,}"}
        for i in range(500, 510)
    ]
    task = GSM8KTask(_write(tmp_path / "gsm.jsonl", rows))
    ex = task.examples("eval", 2)[0]
    assert ex.prompt.startswith("Question: What is") and ex.domain == "gsm8k"
    meta = ex.meta()
    gold = meta["answer"]
    assert task.evaluate(ex.prompt, f"so it is {int(gold):,}", meta) == 1.0
    assert task.evaluate(ex.prompt, f"#### {gold}.0 apples (not 7)", meta) == 1.0
    assert task.evaluate(ex.prompt, f"{gold} ... or 3", meta) == 0.0  # last number counts
    assert task.evaluate(ex.prompt, "no idea", meta) == 0.0
    assert len(task.examples("train", 8)) == 8 and task.examples("train", 1)[0] != ex


def test_gsm8k_rejects_rows_without_a_final_answer(tmp_path):
    with pytest.raises(ValueError, match="row 1.*####"):
        GSM8KTask([{"question": "q", "answer": "#### 1"}, {"question": "q", "answer": "2"}])
    with pytest.raises(ValueError, match="missing column"):
        GSM8KTask([{"q": "x", "answer": "#### 1"}])


def test_extract_number():
    assert extract_number("#### 1,234") == "1234"
    assert extract_number("it costs 3.50 then 4") == "4"
    assert extract_number("-7.0") == "-7"
    assert extract_number("none") is None


def test_multiple_choice_and_strategyqa(tmp_path):
    mc = MultipleChoiceTask(
        _write(
            tmp_path / "mmlu.jsonl",
            [
                {"question": "2+2?", "choices": ["3", "4", "5"], "answer": 1},
                {"question": "Red?", "choices": ["red", "blue"], "answer": 0},
            ],
        ),
        eval_share=0.5,
    )
    ex = mc.examples("train", 1)[0]
    assert "A. 3\nB. 4\nC. 5" in ex.prompt and ex.answer == "B"
    assert mc.evaluate(ex.prompt, " B", ex.meta()) == 1.0
    assert mc.evaluate(ex.prompt, "The answer is C", ex.meta()) == 0.0
    assert mc.examples("eval", 1)[0].answer == "A"
    by_letter = MultipleChoiceTask(
        [{"question": "Red?", "choices": ["blue", "red"], "answer": "B"}], eval_share=0.0
    )
    assert by_letter.examples("train", 1)[0].answer == "B"
    by_text = MultipleChoiceTask(
        [{"question": "Sky?", "choices": ["green", "blue"], "answer": "blue"}], eval_share=0.0
    )
    assert by_text.examples("train", 1)[0].answer == "B"  # "blue" is choice B
    sqa = MultipleChoiceTask(
        [
            {"question": "Is ice cold?", "answer": True},
            {"question": "Is fire cold?", "answer": False},
        ],
        eval_share=0.5,
    )
    yes = sqa.examples("train", 1)[0]
    assert yes.answer == "A" and sqa.evaluate(yes.prompt, "Yes, it is.", yes.meta()) == 1.0
    no = sqa.examples("eval", 1)[0]
    assert sqa.evaluate(no.prompt, "yes", no.meta()) == 0.0
    with pytest.raises(ValueError, match="row 0"):
        MultipleChoiceTask([{"question": "q", "choices": ["a", "b"], "answer": 7}])


def test_example_meta_carries_domain_and_answer():
    ex = Example("p", "a", "d", {"extra": 1})
    assert ex.meta() == {"domain": "d", "answer": "a", "extra": 1}


def test_preference_rows_malformed_and_on_policy_negatives():
    examples = SyntheticSuite(("max",)).examples("train", 2000, seed=0)
    rows = preference_rows(examples, seed=0, malformed_share=0.5)
    digit = sum(len(r["rejected"]) == 1 and r["rejected"].isdigit() for r in rows) / 2000
    # half the rejected answers are malformed: 1-3 chars from MALFORMED_ALPHABET's 20 symbols,
    # so 1/3 * 10/20 of those is still a single digit -> 0.5 * (1 - 1/6) = 0.417 are not
    # (binomial sd over 2000 rows ~0.011: the bounds are +-3 sd)
    assert len(MALFORMED_ALPHABET) == 20
    assert 0.384 < 1 - digit < 0.45
    assert all(r["rejected"] != e.answer == r["chosen"] for r, e in zip(rows, examples))
    sampled = {e.prompt: ["zz"] for e in examples[:1000]}  # only half the prompts have samples
    rows = preference_rows(examples, seed=0, sampled=sampled, on_policy_share=1.0)
    assert all((r["rejected"] == "zz") == (r["prompt"] in sampled) for r in rows)
    assert sum(r["rejected"] == "zz" for r in rows) >= 1000
    with pytest.raises(ValueError, match="on_policy_share"):
        preference_rows(examples, seed=0, on_policy_share=-0.1)
