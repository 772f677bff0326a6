"""A task whose prompts are written in the policy's chat template (instruct models).

Instruct models answer a bare "Question: ...\nAnswer:" poorly; their users send messages
through the tokenizer's chat template, and TRL does the same for conversational datasets.
Only the prompt changes: the gold checker, the domain and the answer are the wrapped task's,
and the plain question stays in the metadata (``question``) for whoever wants it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from laser.tasks.base import Example, Task


class ChatTemplateTask:
    """``task`` with every prompt formatted as one user message plus the generation prompt."""

    def __init__(self, task: Task, tokenizer: Any) -> None:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                "external.chat_template is true but the policy's tokenizer has no chat template"
            )
        self.task, self.tokenizer = task, tokenizer
        self.domains = task.domains

    def format(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        return [
            replace(e, prompt=self.format(e.prompt), metadata={**e.metadata, "question": e.prompt})
            for e in self.task.examples(split, n, seed)
        ]

    def evaluate(self, prompt: str, completion: str, metadata: dict[str, Any]) -> float:
        return self.task.evaluate(prompt, completion, metadata)
