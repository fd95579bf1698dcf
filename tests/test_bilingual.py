"""The Chinese edition's number refill (_ext/bilingual.py): a message whose only change is its
numbers is translated from its old translation with the new numbers, never by guessing."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "_ext"))

import bilingual  # noqa: E402

OLD = {"BCE 0.630 (at 0.09), F1-weighted BCE 0.701 (at 0.08)":
       "BCE 为 0.630（阈值 0.09），F1 加权 BCE 为 0.701（阈值 0.08）"}


def test_an_unchanged_message_keeps_its_translation():
    for english, chinese in OLD.items():
        assert bilingual.translate(english, OLD) == chinese


def test_new_numbers_take_the_old_places_in_order():
    assert (bilingual.translate("BCE 0.612 (at 0.11), F1-weighted BCE 0.700 (at 0.07)", OLD)
            == "BCE 为 0.612（阈值 0.11），F1 加权 BCE 为 0.700（阈值 0.07）")
    same = {"0.630 at 0.09, 0.701 at 0.09": "0.630（0.09），0.701（0.09）"}
    assert (bilingual.translate("0.612 at 0.10, 0.700 at 0.10", same)
            == "0.612（0.10），0.700（0.10）")
    # the two 0.09 now differ: which one the translation wrote first is not known
    assert bilingual.translate("0.612 at 0.10, 0.700 at 0.07", same) is None


def test_a_reordered_translation_is_filled_by_value_or_not_at_all():
    old = {"+0.016 at epoch 20, +0.051 post hoc": "事后调整 +0.051，第 20 个 epoch 时 +0.016"}
    assert (bilingual.translate("+0.020 at epoch 20, +0.049 post hoc", old)
            == "事后调整 +0.049，第 20 个 epoch 时 +0.020")
    twice = {"3 of 3 held, 3 seeds": "3 个种子，3 条中 3 条成立"}  # reordered, 3 now ambiguous
    assert bilingual.translate("2 of 3 held, 3 seeds", twice) is None


def test_numbers_inside_roles_equations_and_code_are_not_prose():
    old = {"gain {glue:text}`ch2_x:.3f` at ratio 10 with $K = 10$":
           "比例为 10 时增益为 {glue:text}`ch2_x:.3f`，其中 $K = 10$"}
    assert (bilingual.translate("gain {glue:text}`ch2_x:.3f` at ratio 100 with $K = 10$", old)
            == "比例为 100 时增益为 {glue:text}`ch2_x:.3f`，其中 $K = 10$")


def test_a_message_that_changed_in_words_is_untranslated():
    assert bilingual.translate("BCE 0.630 (at 0.09), Dice 0.505 (at 0.08)", OLD) is None


def test_numbers_alone_need_no_translation():
    assert bilingual.translate_glued("chapters/01_smooth_accuracy", "+0.067, -0.001") == \
        "+0.067, -0.001"


def test_glossary_terms_feed_the_search_dictionary():
    terms = bilingual.glossary_terms()
    assert {"交叉熵", "类别不平衡", "光滑准确率"} <= set(terms)
    assert all(len(t) >= 2 for t in terms)


def test_a_number_that_is_part_of_a_name_is_never_refilled():
    """The auditor's first case: a translation that wrote CIFAR10-LT for CIFAR-10-LT passed the
    test, and when the English went from ratio 10 to 100 the refill wrote CIFAR100-LT. Digits
    of a name are not numbers now, and a name written differently fails the test."""
    old = {"CIFAR-10-LT at ratio 10": "CIFAR10-LT 比例 10"}
    assert bilingual.translate("CIFAR-10-LT at ratio 100", old) is None
    assert bilingual.prose_numbers("CIFAR-10-LT, F1, MNIST-1D, 1e-3, claim 3.17a") == []
    good = {"CIFAR-10-LT at ratio 10": "CIFAR-10-LT 比例 10"}
    assert bilingual.translate("CIFAR-10-LT at ratio 100", good) == "CIFAR-10-LT 比例 100"


def test_a_translation_that_drops_a_sign_is_not_refilled():
    """The second case: "+0.016 ... 0.016" translated as "0.016 ... 0.016" gave both slots
    the second new number."""
    old = {"+0.016 at ratio 10, 0.016 post hoc": "比例 10 时 0.016，事后 0.016"}
    assert bilingual.translate("+0.020 at ratio 10, 0.018 post hoc", old) is None


def test_a_sign_change_goes_to_the_translator():
    """The third case: a number that changes sign may need other words around it."""
    old = {"gain +0.016 at ratio 10": "比例 10 时增益 +0.016"}
    assert bilingual.translate("gain -0.004 at ratio 10", old) is None
    assert bilingual.translate("gain +0.030 at ratio 100", old) == "比例 100 时增益 +0.030"


def test_the_translation_test_counts_signs_percent_and_names():
    sys.path.insert(0, str(ROOT / "tests"))
    import test_translations

    assert test_translations.numbers("+0.016 vs 0.016") != test_translations.numbers(
        "0.016 vs 0.016")
    assert test_translations.numbers("-0.004") != test_translations.numbers("+0.004")
    assert test_translations.numbers("12%") != test_translations.numbers("12")
    assert test_translations.numbers("CIFAR-10-LT") != test_translations.numbers("CIFAR10-LT")
