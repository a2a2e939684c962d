"""The one loader of cloned reference code (``vpbench.reference.clones``, ``vpbench.reference.openstl_clone``): what
``bench speed`` and the golden-file generators of ``tools/golden`` import a clone's files with."""
from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vpbench.errors import UserError
from vpbench.reference.clones import (
    StandIn,
    Unavailable,
    commit_of,
    folder_module,
    load_file,
    package,
    restored_modules,
    stand_in,
)
from vpbench.reference.openstl_clone import openstl_timm


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_a_module_that_does_not_import_stands_in_with_the_names_given_and_classes_that_fail_when_built():
    with restored_modules("vpbench_absent"):
        module = stand_in("vpbench_absent.layers", to_2tuple=lambda x: (x, x))
        assert isinstance(module, StandIn) and isinstance(sys.modules["vpbench_absent"], StandIn)
        from vpbench_absent.layers import Block, to_2tuple  # as the clones' files import

        assert to_2tuple(3) == (3, 3)
        with pytest.raises(Unavailable, match="vpbench_absent.layers.Block is not available: vpbench_absent does "
                                              "not import here"):
            Block()
        assert importlib.import_module("vpbench_absent").layers is module
    assert "vpbench_absent" not in sys.modules and "vpbench_absent.layers" not in sys.modules
    assert stand_in("json") is importlib.import_module("json")  # what imports is used as it is


def test_restored_modules_unloads_what_the_block_imported_and_puts_back_what_it_replaced():
    before = sys.modules["json"]
    with restored_modules("json"):
        sys.modules["json"] = StandIn("json")
        sys.modules["json.vpbench_extra"] = StandIn("json.vpbench_extra")
    assert sys.modules["json"] is before and "json.vpbench_extra" not in sys.modules


def test_a_folder_without_init_is_a_package_whose_files_import_their_siblings(tmp_path):
    for version in (1, 2):
        write(tmp_path / f"clone{version}", {"model/Blocks.py": f"WIDTH = {version}\n",
                                             "model/Net.py": "from .Blocks import *\nSIZE = 10 * WIDTH\n"})
    assert [folder_module(tmp_path / f"clone{v}" / "model", "Net").SIZE for v in (1, 2)] == [10, 20]  # never mixed
    single = load_file(write(tmp_path, {"utils.py": "VALUE = 7\n"}), "utils.py")
    assert single.VALUE == 7 and single.__name__.startswith("_vpbench_clone_")


def test_a_package_is_made_over_a_folder_and_one_over_another_folder_is_unloaded_first(tmp_path):
    for name in ("a", "b"):
        write(tmp_path / name, {"openstl_fake/models/m.py": f"WHERE = {name!r}\n"})
    with restored_modules("openstl_fake"):
        package("openstl_fake.models", tmp_path / "a" / "openstl_fake" / "models")
        assert sys.modules["openstl_fake"].__path__ == [str(tmp_path / "a" / "openstl_fake")]  # its parent made too
        assert importlib.import_module("openstl_fake.models.m").WHERE == "a"
        assert package("openstl_fake", tmp_path / "a" / "openstl_fake").models.m.WHERE == "a"  # kept as loaded
        package("openstl_fake", tmp_path / "b" / "openstl_fake")  # another clone's
        assert "openstl_fake.models" not in sys.modules and "openstl_fake.models.m" not in sys.modules
        package("openstl_fake.models", tmp_path / "b" / "openstl_fake" / "models")
        assert importlib.import_module("openstl_fake.models.m").WHERE == "b"
    assert "openstl_fake" not in sys.modules


def test_the_commit_of_a_git_checkout_or_of_an_exported_copy(tmp_path):
    exported = write(tmp_path / "exported", {".commit": "c74deb5d4c3da585291f9f18281f3fefdbba3a54\n"})
    assert commit_of(exported) == "c74deb5d4c3da585291f9f18281f3fefdbba3a54"
    assert commit_of(write(tmp_path / "plain", {"model.py": ""})) is None
    checkout = write(tmp_path / "checkout", {"model.py": "", ".commit": "not this one"})
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "model.py"], ["commit", "-q", "-m", "one"]):
        subprocess.run([*git, *args], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert commit_of(checkout) == head


TIMM = {
    "timm/__init__.py": "raise ImportError('the model zoo of timm 0.6.11 does not import here')\n",
    "timm/version.py": "__version__ = '0.6.11'\n",
    "timm/models/__init__.py": "raise ImportError('not run')\n",
    "timm/models/layers/__init__.py": "from torchvision.transforms.functional import InterpolationMode\n"
                                      "BICUBIC = InterpolationMode.BICUBIC\nclass DropPath:\n    pass\n",
}


def test_openstls_timm_is_its_model_files_alone_with_torchvision_standing_in(tmp_path, monkeypatch, fresh_imports):
    monkeypatch.syspath_prepend(str(write(tmp_path, TIMM)))
    with openstl_timm() as version:
        from timm.layers import DropPath  # OpenSTL-Lightning's import path

        assert version == "0.6.11" and sys.modules["timm"].__version__ == "0.6.11"
        assert DropPath is importlib.import_module("timm.models.layers").DropPath
    assert not [m for m in sys.modules if m == "timm" or m.startswith(("timm.", "torchvision"))]


def test_a_timm_other_than_openstls_is_a_one_line_error(tmp_path, monkeypatch, fresh_imports):
    monkeypatch.syspath_prepend(str(write(tmp_path, {**TIMM, "timm/version.py": "__version__ = '0.9.16'\n"})))
    with pytest.raises(UserError, match=r"need timm 0.6.11 .*found 0.9.16\): pip install --no-deps --target DIR "
                                        r"timm==0.6.11"):
        with openstl_timm():
            pass
