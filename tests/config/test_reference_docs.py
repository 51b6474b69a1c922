"""The generated config reference shows real defaults, and the committed docs/config.md is what it makes."""

from pathlib import Path

from lora_scripts.config.show import reference_markdown


def _row(text: str, key: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))


def test_reference_has_no_pydantic_placeholders():
    text = reference_markdown()
    assert "PydanticUndefined" not in text
    assert _row(text, "sample_prompts").startswith("| `sample_prompts` | `[]` |")
    assert "**required**" in _row(text, "base_model")
    assert "`null`" in _row(text, "metadata_path")


def test_config_docs_command_writes_the_reference(tmp_path, run_cli):
    out = tmp_path / "docs" / "config.md"
    done = run_cli("config-docs", "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert text == reference_markdown() and "PydanticUndefined" not in text
    committed = Path(__file__).parents[2] / "docs" / "config.md"
    assert "PydanticUndefined" not in committed.read_text(encoding="utf-8")
