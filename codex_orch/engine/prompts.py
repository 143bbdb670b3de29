"""Role prompts: Jinja2 templates, the host repo's overriding the packaged ones, strictly rendered."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codex_orch.errors import InputError
from codex_orch.inputs import read_text_file
from codex_orch.layout import Layout, packaged_templates

MAX_SPEC_BYTES = 10 * 1024 * 1024


def read_spec(path: Path, label: str | None = None) -> str:
    """A spec file's text. Anything but UTF-8 text is an error, raised before any agent starts."""
    return read_text_file(path, label or str(path), MAX_SPEC_BYTES, ", since every prompt carries it whole")


class PromptRenderer:
    """Renders a role's template; templates in .orchestrator/prompts win over the packaged ones."""

    def __init__(self, layout: Layout) -> None:
        from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

        self._layout = layout
        self._env = Environment(
            loader=ChoiceLoader(
                [FileSystemLoader(str(layout.prompts_dir)), FileSystemLoader(str(packaged_templates() / "prompts"))]
            ),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            trim_blocks=False,
        )

    def render(self, template_name: str, context: Mapping[str, Any]) -> str:
        from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError

        try:
            template = self._env.get_template(template_name)
            return template.render(**context)
        except TemplateNotFound as exc:
            raise InputError(
                f"{template_name}: prompt template not found in {self._layout.prompts_dir} nor among the defaults"
                f" (missing: {exc.name})"
            ) from None
        except TemplateSyntaxError as exc:
            raise InputError(f"{exc.filename or exc.name}: line {exc.lineno}: template error: {exc.message}") from None
        except TemplateError as exc:
            raise InputError(f"{template_name}: template error: {exc.message}") from None
