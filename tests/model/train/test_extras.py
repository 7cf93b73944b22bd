"""Training-only packages: where one is missing (as in the API image), the error names it, what
needed it, and how to install it."""

import pytest

from model.train.extras import MissingTrainingPackage, import_training_package

ABSENT = "nextword_no_such_package"


def test_a_present_package_is_imported() -> None:
    assert import_training_package("json", "reading").loads("[1]") == [1]


def test_a_missing_package_says_which_what_for_and_how_to_install_it() -> None:
    with pytest.raises(MissingTrainingPackage) as raised:
        import_training_package(f"{ABSENT}.models", "training vectors")
    message = str(raised.value)
    assert f"training vectors needs the {ABSENT} package" in message
    assert "pip install -e '.[train]'" in message and "--target train" in message
