import numpy as np
import polars as pl
import pytest

from pipeline.datasets import DataError
from pipeline.prompts import TokenWindow, item_prompts, recent_items_that_fit, user_item_column, user_prompts

ITEMS = pl.DataFrame(
    {
        "item": [1, 2, 3],
        "original_id": ["x", "y", "z"],
        "title": ["Bee", "", "Ant"],
        "year": ["2001", "2002", ""],
    }
)
# User 1 saw 1 2 3 1 2: the last two (validation and test targets) stay out of the prompt.
INTERACTIONS = pl.DataFrame({"user": [1, 1, 1, 1, 1, 2, 2, 2], "item": [1, 2, 3, 1, 2, 3, 3, 1]})


def test_item_prompt_fills_template_and_marks_missing_values():
    prompts = item_prompts(ITEMS, "name is {title}; year is {year}.", "unknown", 4096)
    assert prompts["text"].to_list() == [
        "name is Bee; year is 2001.",
        "name is unknown; year is 2002.",
        "name is Ant; year is unknown.",
    ]


def test_item_prompt_is_cut_at_max_chars():
    assert item_prompts(ITEMS, "{title}{title}", "?", 4)["text"].to_list() == ["BeeB", "??", "AntA"]


def test_default_item_prompt_lists_columns():
    assert item_prompts(ITEMS, None, "unknown", 4096)["text"][0] == "title is Bee; year is 2001."


def test_unknown_template_field_names_the_columns():
    with pytest.raises(DataError, match="brand.*columns: item, original_id, title, year"):
        item_prompts(ITEMS, "{brand}", "unknown", 4096)


def test_user_prompt_uses_training_items_only_and_skips_untitled_ones():
    prompts = user_prompts(INTERACTIONS, ITEMS, "The user likes: {items}.", "title", 8000)
    assert prompts["user"].to_list() == [1, 2]
    assert prompts["text"].to_list() == ["The user likes: Bee, Ant.", "The user likes: Ant."]


def test_user_prompt_keeps_the_most_recent_characters():
    prompts = user_prompts(INTERACTIONS, ITEMS, "{items}", "title", 5)
    assert prompts["text"][0] == "Bee, Ant"[-5:]


def test_user_prompt_needs_exactly_the_items_field():
    with pytest.raises(DataError, match="exactly one field"):
        user_prompts(INTERACTIONS, ITEMS, "{items} {title}", "title", 8000)


def test_optional_segments_and_field_limits():
    template = ["name is {title}; year is {year}. ", {"optional": "Made in {year}."}]
    prompts = item_prompts(ITEMS, template, "unknown", 4096, {"title": 2})
    assert prompts["text"].to_list() == [
        "name is unknown; year is 2001. Made in 2001.",  # 'Bee' is over the 2-character limit
        "name is unknown; year is 2002. Made in 2002.",
        "name is unknown; year is unknown. ",
    ]


def test_user_item_column_default_and_check():
    assert user_item_column(ITEMS, None) == "title"
    assert user_item_column(ITEMS.drop("title"), None) == "original_id"
    with pytest.raises(DataError, match="not an item column"):
        user_item_column(ITEMS, "name")


def word_window(size):
    """A stand-in encoder window that counts words."""
    return TokenWindow(lambda texts: [len(text.split()) for text in texts], size)


def test_user_prompt_keeps_the_most_recent_items_that_fit_the_token_window():
    template = "Likes: {items} ."  # 2 words around the list; each title below is one word
    histories = [["a", "b", "c", "d", "e"], ["a", "b"], [], ["averyverylongtitle"]]
    # 5 words fit: 'Likes:' + 3 titles + '.'; the second user fits whole; the last keeps its one item
    assert recent_items_that_fit(template, histories, word_window(5)) == [3, 2, 0, 1]
    assert recent_items_that_fit(template, histories, word_window(1)) == [1, 1, 0, 1]  # never fewer than the last item
    interactions = pl.DataFrame({"user": [1] * 7, "item": [1, 3, 1, 3, 1, 2, 2]})
    prompts = user_prompts(interactions, ITEMS, template, "title", window=word_window(4))
    assert prompts["text"].to_list() == ["Likes: Ant, Bee ."]  # training part Bee Ant Bee Ant Bee, newest two


def test_user_prompts_fit_the_default_encoders_window_with_its_own_tokenizer():
    window = TokenWindow.of_encoder("default")
    assert window.size == 256
    titles = [f"Product number {i} with a fairly long descriptive title" for i in range(60)]
    template = "The user has visited following fashions: \n{items} \nplease conclude the user's perference."
    [kept] = recent_items_that_fit(template, [titles], window)
    assert 0 < kept < 60
    fitted = template.format(items=", ".join(titles[-kept:]))
    one_more = template.format(items=", ".join(titles[-kept - 1 :]))
    assert window.count([fitted])[0] <= 256 < window.count([one_more])[0]
    assert fitted.endswith("number 59 with a fairly long descriptive title \nplease conclude the user's perference.")


def test_user_prompts_are_tokenized_in_chunks_with_the_same_result(monkeypatch):
    import pipeline.prompts as prompts

    rng = np.random.default_rng(0)
    histories = [[f"item{j}" for j in range(int(rng.integers(0, 12)))] for _ in range(57)]
    sizes = []

    def count(texts):
        sizes.append(len(texts))
        return [len(text.split()) for text in texts]

    whole = recent_items_that_fit("{items} end", histories, TokenWindow(count, 6))
    monkeypatch.setattr(prompts, "TOKENIZE_CHUNK", 10)
    sizes.clear()
    assert recent_items_that_fit("{items} end", histories, TokenWindow(count, 6)) == whole
    assert max(sizes) <= 10 and sum(sizes) > 57  # memory follows the chunk, not the users
