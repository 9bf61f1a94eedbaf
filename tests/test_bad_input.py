"""Every kind of bad input gets its documented outcome: an error that names the file, line and
problem, or rows dropped and counted in the ingest report. Nothing is lost silently."""

import gzip
import json

import pytest

from pipeline.datasets import DataError, read_dataset, with_defaults
from pipeline.ingest import canonicalise, check_drops
from pipeline.prompts import item_prompts

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def recbole(tmp_path, inter_text, item_text="item_id:token\ttitle:token\na\tA\n"):
    (tmp_path / "x.inter").write_bytes(inter_text if isinstance(inter_text, bytes) else inter_text.encode())
    (tmp_path / "x.item").write_text(item_text)
    return {"format": "recbole", "inter": str(tmp_path / "x.inter"), "item": str(tmp_path / "x.item")}


def sequences(tmp_path, lines: bytes, items="item_id\ttitle\na\tA\n"):
    (tmp_path / "s.txt").write_bytes(lines)
    (tmp_path / "i.tsv").write_text(items)
    return {"format": "sequences", "sequences": str(tmp_path / "s.txt"), "items": str(tmp_path / "i.tsv")}


def ingest(spec, **overrides):
    spec = with_defaults({**spec, **overrides})
    raw = read_dataset(spec)
    check_drops(raw.report, spec["max_bad_rows"], "input")
    return canonicalise(raw, spec["min_user_interactions"], spec["min_item_interactions"], spec["min_sequence_length"])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: recbole(p, ""),
        lambda p: sequences(p, b""),
        lambda p: sequences(p, b"u a b c\n", items=""),
        lambda p: {"format": "llmesr", "inter": str((p / "inter.txt", (p / "inter.txt").write_text(""))[0])},
        lambda p: {
            "format": "amazon2018",
            "reviews": str((p / "r.json", (p / "r.json").write_text(""))[0]),
            "meta": str((p / "m.json", (p / "m.json").write_text("{}\n"))[0]),
        },
    ],
)
def test_an_empty_file_is_an_error_naming_it(tmp_path, make):
    with pytest.raises(DataError, match=r"\S+: the file is empty"):
        read_dataset(with_defaults(make(tmp_path)))


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="missing input files .*working directory.*:\n  inter: .*absent"):
        read_dataset({"format": "llmesr", "inter": str(tmp_path / "absent")})


def test_a_missing_column_is_an_error_naming_the_columns(tmp_path):
    spec = recbole(tmp_path, "user_id:token\tthing:token\nu\ta\n")
    with pytest.raises(DataError, match=r"x.inter: no 'item_id' column \(columns: user_id, thing\)"):
        read_dataset(spec)
    spec = sequences(tmp_path, b"u a b c\n", items="id\ttitle\na\tA\n")
    with pytest.raises(DataError, match=r"i.tsv: no 'item_id' column"):
        read_dataset(spec)


def test_a_line_with_the_wrong_number_of_fields_names_the_line(tmp_path):
    spec = recbole(tmp_path, HEADER + "u\ta\t1\nu\tb\t2\textra\n")
    with pytest.raises(DataError, match=r"x.inter: line 3: 4 fields where the header has 3"):
        read_dataset(spec)


def test_non_utf8_in_a_table_names_the_line(tmp_path):
    spec = recbole(tmp_path, HEADER.encode() + b"u\ta\t1\nu\t\xff\t2\n")
    with pytest.raises(DataError, match=r"x.inter: line 3: not UTF-8"):
        read_dataset(spec)


def test_malformed_lines_in_line_formats_are_dropped_and_counted(tmp_path):
    lines = b"u1 a b c\nu2\n\xff\xfe x y\nu3 a b c\n"
    _, _, users, report = ingest(sequences(tmp_path, lines), min_item_interactions=1, max_bad_rows=0.9)
    assert report["rows_malformed"] == 2 and users.height == 2
    reviews = [json.dumps({"reviewerID": f"u{n % 3}", "asin": "a", "unixReviewTime": n}) for n in range(9)]
    reviews += ["{broken json", json.dumps({"reviewerID": "u1", "unixReviewTime": 3})]
    (tmp_path / "r.json.gz").write_bytes(gzip.compress("\n".join(reviews).encode()))
    (tmp_path / "m.json").write_text(json.dumps({"asin": "a", "title": "A"}) + "\n")
    spec = {"format": "amazon2018", "reviews": str(tmp_path / "r.json.gz"), "meta": str(tmp_path / "m.json")}
    _, _, _, report = ingest(spec, min_item_interactions=1, max_bad_rows=0.5)
    assert report["rows_malformed"] == 1 and report["rows_missing_fields"] == 1 and report["rows_read"] == 11


def test_too_many_bad_rows_stop_ingestion(tmp_path):
    lines = b"u1 a b c\n" + b"junk\n" * 5
    with pytest.raises(DataError, match=r"5 of 6 malformed lines .*s.txt:2: a user without items.* raise max_bad_rows"):
        ingest(sequences(tmp_path, lines))


def test_duplicate_user_lines_keep_the_first(tmp_path):
    _, _, _, report = ingest(
        sequences(tmp_path, b"u1 a b c\nu2 a b c\nu1 c b a\n"), min_item_interactions=1, max_bad_rows=0.5
    )
    assert report["duplicate_user_lines"] == 1 and report["interactions_in_duplicate_lines"] == 3
    assert report["interactions"] == 6 and report["bad_lines"] == [
        f"{tmp_path / 's.txt'}:3: user u1 again (first on line 1)"
    ]


def test_users_split_over_two_lines_stop_ingestion_naming_the_lines(tmp_path):
    # each user's history on two lines: half the interactions would be dropped
    lines = b"".join(f"u{n} a b c\n".encode() for n in range(4)) + b"".join(f"u{n} d e f\n".encode() for n in range(4))
    with pytest.raises(
        DataError,
        match=r"4 of 8 lines repeating a user .*12 of 24 interactions on those repeated lines"
        r".*s.txt:5: user u0 again \(first on line 1\)",
    ):
        ingest(sequences(tmp_path, lines), min_item_interactions=1)


def test_small_drops_are_summarised(tmp_path):
    from pipeline.ingest import drop_summary

    lines = b"".join(f"u{n} a b c\n".encode() for n in range(200)) + b"u0 d\n\xff\n"
    _, _, _, report = ingest(
        sequences(tmp_path, lines, items="item_id\ttitle\na\tA\na\tA again\n"), min_item_interactions=1
    )
    assert drop_summary(report) == [
        "1 of 202 malformed lines (not UTF-8 or not parseable) (0.50%) dropped",
        "1 of 202 lines repeating a user of an earlier line (a user's sequence must be on one line) (0.50%) dropped",
        "1 of 601 interactions on those repeated lines (0.17%) dropped",
        "1 item rows repeat an item id (the first row of each id is kept)",
        "2 of 3 items have no row in the item table: their prompts read the missing text (e.g. 'b', 'c')",
    ]
    assert report["bad_lines"] == [
        f"{tmp_path / 's.txt'}:201: user u0 again (first on line 1)",
        f"{tmp_path / 's.txt'}:202: not UTF-8",
    ]


def test_a_table_line_with_too_few_fields_names_the_line(tmp_path):
    spec = sequences(tmp_path, b"u a b c\n", items="item_id\ttitle\tbrand\na\tA\tX\nb\tB\nc\tC\tZ\n")
    with pytest.raises(DataError, match=r"i.tsv: line 3: 2 fields where the header has 3"):
        read_dataset(with_defaults(spec))


def test_items_missing_from_the_item_table_are_counted_and_prompted_as_missing(tmp_path):
    interactions, items, _, report = ingest(sequences(tmp_path, b"u1 a b c\nu2 a b c\nu3 a b c\n"))
    assert report["items_without_metadata"] == 2  # b and c
    prompts = item_prompts(items, "name is {title}", "unknown", 100)
    assert prompts["text"].to_list() == ["name is A", "name is unknown", "name is unknown"]


def test_a_dataset_empty_after_filtering_says_what_to_lower(tmp_path):
    with pytest.raises(DataError, match="no interactions are left after filtering .* lower min_user_interactions"):
        ingest(sequences(tmp_path, b"u1 a b c\nu2 d e f\n"))


def test_a_user_with_a_single_interaction_is_dropped_and_counted(tmp_path):
    _, _, users, report = ingest(
        sequences(tmp_path, b"u1 a b c\nu2 a\nu3 a b c\n"), min_item_interactions=1, min_user_interactions=1
    )
    assert users["original_id"].to_list() == ["u1", "u3"]
    assert report["dropped_short_sequences"] == 1 and report["users_dropped_short_sequences"] == 1


def test_a_json_file_without_usable_records_is_an_error(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"reviewerID": "u"}) + "\n")
    (tmp_path / "m.json").write_text("{}\n")
    with pytest.raises(DataError, match="no review with reviewerID, asin and unixReviewTime"):
        read_dataset({"format": "amazon2014", "reviews": str(tmp_path / "r.json"), "meta": str(tmp_path / "m.json")})
