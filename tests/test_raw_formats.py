"""The paper's raw dumps, written here in their exact schemas (field names, gzip, Python-literal
meta lines, missing fields, malformed lines), read, filtered and turned into prompts.

Every file holds the interactions of test_ingest.ROWS, so the expected result is the same:
users u1, u2; items b, c, a; interactions (1,1) (1,2) (1,3) (2,3) (2,1) (2,2)."""

import gzip
import json
import pickle

import numpy as np
import polars as pl
import pytest

from pipeline.config import default_config
from pipeline.datasets import DataError, authors_bundle, read_dataset, with_defaults
from pipeline.ingest import canonicalise
from pipeline.prompts import item_prompts, user_prompts

from conftest import EXPECTED_INTERACTIONS, ROWS, shared_data

CONFIG = default_config()


def write_lines(path, lines, gz):
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return str(path)


def ingest(spec):
    spec = with_defaults({**spec, "filter": "single_pass", "min_sequence_length": 3})
    return canonicalise(read_dataset(spec), spec["min_user_interactions"], spec["min_item_interactions"], 3)


def amazon_reviews(extra_bad_lines=()):
    lines = [
        json.dumps(
            {
                "reviewerID": u,
                "asin": i,
                "overall": 5.0,
                "unixReviewTime": 1_300_000_000 + t,
                "reviewText": "ok",
                "summary": "s",
            }
        )
        for u, i, t in ROWS
    ]
    return lines + list(extra_bad_lines)


def test_amazon2014(tmp_path):
    meta = [
        str(
            {
                "asin": "a",
                "title": "Lip Gloss",
                "price": 3.5,
                "categories": [["Beauty", "Makeup", "Lips"], ["Other"]],
                "salesRank": {"Beauty": 10},
            }
        ),
        str({"asin": "b", "brand": "Acme", "description": "Soft & light."}),
        "{'asin': 'c', 'title': 'broken",  # malformed
        str({"asin": "zzz", "title": "not in the reviews"}),
    ]
    spec = {
        "format": "amazon2014",
        "reviews": write_lines(
            tmp_path / "reviews_Beauty.json.gz", amazon_reviews(["{not json", '{"asin": "a"}']), gz=True
        ),
        "meta": write_lines(tmp_path / "meta_Beauty.json.gz", meta, gz=True),
    }
    interactions, items, users, report = ingest(spec)
    assert list(zip(interactions["user"], interactions["item"])) == EXPECTED_INTERACTIONS
    assert report["rows_read"] == 14 and report["rows_malformed"] == 1 and report["rows_missing_fields"] == 1
    assert report["meta_lines_malformed"] == 1 and report["items_without_metadata"] == 1  # c
    prompts = item_prompts(items, CONFIG["datasets"]["beauty"]["item_prompt"], "unknown", 4096)
    assert prompts["text"].to_list() == [
        "The beauty item has following attributes: \n name is unknown; brand is Acme; price is unknown. \n"
        "The item has following descriptions: Soft & light.. \n",
        "The beauty item has following attributes: \n name is unknown; brand is unknown; price is unknown. \n"
        "The item has following descriptions: unknown. \n",
        "The beauty item has following attributes: \n name is Lip Gloss; brand is unknown; price is 3.5. \n"
        "The item has following features: Beauty; Makeup; Lips. \n"
        "The item has following descriptions: unknown. \n",
    ]


def test_amazon2018_and_the_fashion_prompt(tmp_path):
    meta = [
        json.dumps(
            {
                "asin": "a",
                "title": "Shirt",
                "brand": "B" * 101,
                "date": "March 3, 2015",
                "price": "$9.99",
                "feature": ["Cotton", "Blue"],
                "description": [],
                "category": ["Clothing"],
            }
        ),
        json.dumps({"asin": "a", "title": "a duplicate, ignored"}),
        json.dumps({"asin": "b", "title": "Hat", "description": ["Warm", "Wool"]}),
    ]
    spec = {
        "format": "amazon2018",
        "reviews": write_lines(tmp_path / "AMAZON_FASHION.json.gz", amazon_reviews(), gz=True),
        "meta": write_lines(tmp_path / "meta_AMAZON_FASHION.json.gz", meta, gz=True),
    }
    interactions, items, users, report = ingest(spec)
    assert list(zip(interactions["user"], interactions["item"])) == EXPECTED_INTERACTIONS
    fashion = CONFIG["datasets"]["fashion"]
    prompts = item_prompts(items, fashion["item_prompt"], "unknown", 4096, fashion["field_max_chars"])
    assert prompts["text"].to_list() == [
        "The fashion item has following attributes: \n name is Hat; brand is unknown; score is unknown; "
        "price is unknown. \n"
        "The item has following descriptions: Warm; Wool. \n",
        "The fashion item has following attributes: \n name is unknown; brand is unknown; score is unknown; "
        "price is unknown. \n",
        "The fashion item has following attributes: \n name is Shirt; brand is unknown; score is March 3, 2015; "
        "price is $9.99. \n"
        "The item has following features: Cotton; Blue. \n",
    ]
    assert (
        user_prompts(interactions, items, fashion["user_prompt"], "title", 8000)["text"][0]
        == "The user has visited following fashions: \nHat \nplease conclude the user's perference."
    )


@pytest.mark.parametrize("edition", ["kaggle2013", "open"])
def test_yelp(tmp_path, edition):
    def date(t):
        return f"2012-01-{t:02d}" if edition == "kaggle2013" else f"2012-01-{t:02d} 10:00:00"

    reviews = [
        json.dumps({"review_id": f"r{n}", "user_id": u, "business_id": i, "stars": 4, "date": date(t)})
        for n, (u, i, t) in enumerate(ROWS)
    ]
    reviews += [
        json.dumps({"user_id": "u1", "business_id": "a", "stars": 5, "date": "1999-12-31"}),  # before the window
        json.dumps({"user_id": "u1", "business_id": "a", "stars": 5, "date": "2020-01-02 08:00:00"}),
        "not json at all",
    ]
    if edition == "kaggle2013":
        business = {
            "business_id": "a",
            "name": "Joe's",
            "categories": ["Pizza", "Bars"],
            "type": "business",
            "open": True,
            "review_count": 12,
            "city": "Phoenix",
            "state": "AZ",
            "stars": 4.5,
        }
    else:
        business = {
            "business_id": "a",
            "name": "Joe's",
            "categories": "Pizza, Bars",
            "is_open": 1,
            "review_count": 12,
            "city": "Phoenix",
            "state": "AZ",
            "stars": 4.5,
        }
    gz = edition == "open"
    spec = {
        "format": "yelp",
        "reviews": write_lines(tmp_path / "review.json", reviews, gz),
        "business": write_lines(tmp_path / "business.json", [json.dumps(business)], gz),
    }
    interactions, items, users, report = ingest(spec)
    assert list(zip(interactions["user"], interactions["item"])) == EXPECTED_INTERACTIONS
    assert report["rows_outside_date_window"] == 2 and report["rows_malformed"] == 1
    yelp = CONFIG["datasets"]["yelp"]
    text = item_prompts(items, yelp["item_prompt"], "unknown", 4096).filter(pl.col("item") == 3)["text"].item()
    kind = "business" if edition == "kaggle2013" else "unknown"
    assert text == (
        "The point of interest has following attributes: \n name is Joe's; category is Pizza Bars; "
        f"type is {kind}; open status is True; review count is 12; city is Phoenix; average score is 4.5."
    )
    assert (
        user_prompts(interactions, items, yelp["user_prompt"], "name", 8000)["text"][1]
        == "The user has visited following point of interests: \nJoe's \nplease conclude the user's perference."
    )


def test_a_line_that_is_not_utf8_is_counted(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_bytes("".join(line + "\n" for line in amazon_reviews()).encode() + b'{"reviewerID": "\xff"}\n')
    meta = write_lines(tmp_path / "meta.json", [json.dumps({"asin": "a"})], gz=False)
    _, _, _, report = ingest({"format": "amazon2018", "reviews": str(path), "meta": meta})
    assert report["rows_malformed"] == 1


def test_single_pass_and_kcore_differ():
    from pipeline.datasets import RawData

    rows = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u3", "a"), ("u3", "c"), ("u4", "c")]
    raw = RawData(
        pl.DataFrame(
            {"user": [u for u, _ in rows], "item": [i for _, i in rows], "order": [float(n) for n in range(len(rows))]}
        ),
        None,
    )
    single = canonicalise(raw, 2, 2, 2, "single_pass")
    kcore = canonicalise(raw, 2, 2, 2, "kcore")
    assert (single[3]["users"], single[3]["items"], single[3]["interactions"]) == (3, 3, 6)
    assert (kcore[3]["users"], kcore[3]["items"], kcore[3]["interactions"]) == (2, 2, 4)
    assert kcore[3]["filter_passes"] == 4  # three that drop, one that finds nothing left to drop


def test_bundle_export_then_import_is_identical(tmp_path):
    rng = np.random.default_rng(0)
    interactions = pl.DataFrame(
        {"user": [1, 1, 1, 2, 2, 2, 3, 3, 3], "item": [1, 2, 3, 3, 1, 2, 2, 3, 1]},
        schema={"user": pl.Int32, "item": pl.Int32},
    )
    llm_items, llm_users = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    pca_items = rng.normal(size=(3, 4)).astype(np.float32)
    neighbours = np.array([[2, 3], [3, 1], [1, 2]], dtype=np.int32)
    authors_bundle.export(tmp_path, interactions, llm_items, llm_users, pca_items, neighbours)
    assert authors_bundle.load_array(tmp_path / "itm_emb_np.pkl").dtype == np.float64
    assert authors_bundle.load_array(tmp_path / "sim_user_100.pkl").tolist() == [[1, 2], [2, 0], [0, 1]]  # 0-based rows
    back_interactions, items, users, _ = canonicalise(
        read_dataset({"format": "llmesr_bundle", "dir": str(tmp_path)}), 1, 1, 3
    )
    assert back_interactions.equals(interactions)
    arrays = authors_bundle.import_artifacts(tmp_path, items, users, hidden_size=4)
    np.testing.assert_array_equal(arrays["llm_items"], llm_items)
    np.testing.assert_array_equal(arrays["llm_users"], llm_users)
    np.testing.assert_array_equal(arrays["pca_items"], pca_items)
    np.testing.assert_array_equal(arrays["neighbours"], neighbours)


class Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.target}",)


def test_a_malicious_pickle_is_refused(tmp_path):
    target = tmp_path / "pwned"
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Exploit(target)))
    with pytest.raises(DataError, match="refused to load"):
        authors_bundle.load_pickle(tmp_path / "evil.pkl")
    assert not target.exists()
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"a": [np.arange(3)]}))
    assert authors_bundle.load_pickle(tmp_path / "ok.pkl")["a"][0].tolist() == [0, 1, 2]


class Allocate:
    """A pickle that asks a constructor to allocate memory from an argument."""

    def __init__(self, constructor, *args):
        self.constructor, self.args = constructor, args

    def __reduce__(self):
        return self.constructor, self.args


@pytest.mark.parametrize(
    "constructor, args",
    [
        (bytearray, (2**44,)),
        (bytes, (2**44,)),
        (np.ndarray, ((2**40,),)),
        (np._core.multiarray._reconstruct, (np.ndarray, (2**40,), b"b")),
        (np._core.multiarray.scalar, (np.dtype(("V", 2**30)),)),
        (np.dtype, (("V", 2**30),)),
    ],
)
def test_a_pickle_that_would_allocate_beyond_its_size_is_refused(tmp_path, constructor, args):
    (tmp_path / "big.pkl").write_bytes(pickle.dumps(Allocate(constructor, *args), protocol=4))
    with pytest.raises(DataError, match="big.pkl: not a pickle of plain data"):
        authors_bundle.load_pickle(tmp_path / "big.pkl")


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_numpy_arrays_of_every_modern_pickle_protocol_load(tmp_path, protocol):
    arrays = {
        "floats": np.linspace(0, 1, 12).reshape(3, 4),
        "ids": np.array([[3, 1], [2, 0]], dtype=np.int64),
        "int32": np.array([1, 2], dtype=np.int32),
        "scalar": np.float64(2.5),
    }
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(arrays, protocol=protocol))
    loaded = authors_bundle.load_pickle(tmp_path / "ok.pkl")
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype


@pytest.mark.parametrize("name, expected", [("yelp", (15_720, 11_383, 192_214)), ("fashion", (9_094, 4_722, 34_759))])
def test_the_authors_interaction_files_give_the_published_counts(name, expected):
    path = shared_data("raw", name, "llmesr", "inter.txt")
    interactions, items, users, _ = ingest({"format": "llmesr", "inter": str(path)})
    assert (users.height, items.height, interactions.height) == expected
    # Already preprocessed: ids and order come out as in the file.
    original = pl.read_csv(path, separator=" ", has_header=False, new_columns=["user", "item"])
    assert interactions["user"].to_list() == original["user"].to_list()
    assert interactions["item"].to_list() == original["item"].to_list()
