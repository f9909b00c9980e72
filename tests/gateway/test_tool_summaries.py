"""A tool in one line: parameter signatures and first sentences (gateway/tool_summaries.py)."""

from __future__ import annotations

from gateway.tool_summaries import MAX_ENUM, MAX_SENTENCE, first_sentence, signature, type_text


def test_a_signature_marks_optional_parameters_and_spells_enums() -> None:
    schema = {
        "type": "object",
        "properties": {
            "owner": {"type": "string"},
            "repo": {"type": "string"},
            "state": {"type": "string", "enum": ["open", "closed"]},
        },
        "required": ["owner", "repo"],
    }
    assert signature(schema) == 'owner: string, repo: string, state?: "open"|"closed"'


def test_a_schema_without_parameters_has_an_empty_signature() -> None:
    assert signature({"type": "object", "properties": {}}) == ""
    assert signature({"type": "object"}) == ""
    assert signature(None) == ""
    assert signature({"properties": ["not", "a", "mapping"]}) == ""


def test_types_read_as_short_unions_arrays_and_references() -> None:
    assert type_text({"type": "array", "items": {"type": "string"}}) == "string[]"
    assert type_text({"type": "array", "items": {"type": ["string", "null"]}}) == "(string|null)[]"
    assert type_text({"type": "array"}) == "array"
    assert type_text({"type": ["integer", "null"]}) == "integer|null"
    assert type_text({"anyOf": [{"type": "string"}, {"type": "null"}]}) == "string|null"
    assert type_text({"anyOf": [{"type": "string"}, {"type": "string", "format": "uri"}]}) == "string"
    assert type_text({"$ref": "#/$defs/Issue"}) == "Issue"
    assert type_text({"const": 3}) == "3"
    assert type_text({"properties": {"a": {}}}) == "object"
    assert type_text({}) == "any"
    assert type_text("not a schema") == "any"


def test_long_enums_and_deep_nesting_are_cut() -> None:
    many = type_text({"enum": list(range(MAX_ENUM + 4))})
    assert many.endswith("|…") and many.count("|") == MAX_ENUM
    deep: dict[str, object] = {"type": "string"}
    for _ in range(6):
        deep = {"type": "array", "items": deep}
    assert type_text(deep) == "object[][][]"


def test_the_first_sentence_ends_at_a_sentence_end_not_at_an_abbreviation() -> None:
    assert first_sentence("Read a file. Returns its text.") == "Read a file."
    assert first_sentence("Search files, e.g. by glob. Slow on big trees.") == "Search files, e.g. by glob."
    assert first_sentence("Is it open? Then say so.") == "Is it open?"
    assert first_sentence("Read version 1.2 of a file. More.") == "Read version 1.2 of a file."
    assert first_sentence("") == ""


def test_the_first_sentence_stays_in_the_first_paragraph_on_one_line() -> None:
    wrapped = "Get a detailed listing of all files\nand directories in a path\n\nArgs:\n  path: where"
    assert first_sentence(wrapped) == "Get a detailed listing of all files and directories in a path"


def test_a_long_first_sentence_is_cut_at_a_word() -> None:
    long = "Fetch " + "very " * 100 + "much."
    cut = first_sentence(long)
    assert len(cut) <= MAX_SENTENCE + 1 and cut.endswith("very…")
