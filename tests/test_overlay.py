"""The base + overlay merge: yq's ``*+`` (deep maps, appended lists, overlay scalars win)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from cogfleet._errors import ConfigError
from cogfleet._overlay import merge_overlay


def merged(base: str, overlay: str) -> str:
    return merge_overlay(textwrap.dedent(base), textwrap.dedent(overlay), "base.yaml", "ov.yaml")


def data(base: str, overlay: str) -> object:
    return yaml.safe_load(merged(base, overlay))


def test_yq_manual_example_appending_arrays():
    # yq's documentation, "Merge, appending arrays": `.a *+ .b`
    base = """\
        array:
          - 1
          - 2
          - animal: dog
        value: coconut
        """
    overlay = """\
        array:
          - 3
          - 4
          - animal: cat
        value: banana
        """
    assert data(base, overlay) == {
        "array": [1, 2, {"animal": "dog"}, 3, 4, {"animal": "cat"}],
        "value": "banana",
    }


def test_yq_manual_examples_null_sides():
    assert data("some: thing\n", "") == {"some": "thing"}  # map * null
    assert data("some: thing\n", "~\n") == {"some": "thing"}
    assert data("", "some: thing\n") == {"some": "thing"}  # null * map
    assert data("~\n", "- some\n") == ["some"]  # null * array
    assert data("- some\n", "null\n") == ["some"]  # array * null


def test_nested_maps_merge_deeply_and_overlay_scalars_win():
    base = """\
        build:
          gpu: true
          cuda: "12.6"
          python_version: "3.11"
          nested:
            a: 1
            deeper: {x: 1, y: 2}
        predict: predict.py:Base
        """
    overlay = """\
        build:
          gpu: false
          nested:
            deeper: {y: 20, z: 30}
            b: 2
        predict: predict.py:DevPredictor
        """
    assert data(base, overlay) == {
        "build": {
            "gpu": False,
            "cuda": "12.6",
            "python_version": "3.11",
            "nested": {"a": 1, "deeper": {"x": 1, "y": 20, "z": 30}, "b": 2},
        },
        "predict": "predict.py:DevPredictor",
    }


def test_lists_are_appended_at_any_depth_and_lists_of_maps_are_not_merged():
    base = """\
        build:
          python_packages: ["torch==2.7.0", "numpy<2"]
          run:
            - command: echo base
              mounts: [{type: secret, id: a, target: /a}]
        environment: [A=1]
        """
    overlay = """\
        build:
          python_packages:
            - einops==0.8.0
          run:
            - command: echo overlay
        environment: [B=2, A=3]
        """
    assert data(base, overlay) == {
        "build": {
            "python_packages": ["torch==2.7.0", "numpy<2", "einops==0.8.0"],
            "run": [
                {"command": "echo base", "mounts": [{"type": "secret", "id": "a", "target": "/a"}]},
                {"command": "echo overlay"},
            ],
        },
        "environment": ["A=1", "B=2", "A=3"],  # appended, duplicates kept
    }


def test_key_order_base_keys_keep_their_place_new_keys_follow_in_overlay_order():
    base = "build:\n  gpu: true\n  cuda: '12.6'\nimage: r8.im/a/b\n"
    overlay = "predict: p.py:P\nbuild:\n  system_packages: [ffmpeg]\n  gpu: false\ntrain: t.py:T\n"
    out = yaml.safe_load(merged(base, overlay))
    assert list(out) == ["build", "image", "predict", "train"]
    assert list(out["build"]) == ["gpu", "cuda", "system_packages"]


def test_nulls_in_the_overlay_replace_and_missing_or_null_base_values_take_the_overlay():
    base = """\
        build:
          gpu: true
          cuda: "12.6"
          python_packages:
        concurrency: {max: 2}
        keep: 1
        """
    overlay = """\
        build:
          cuda: null
          python_packages: [a]
          system_packages: [b]
        concurrency:
        """
    assert data(base, overlay) == {
        "build": {"gpu": True, "cuda": None, "python_packages": ["a"], "system_packages": ["b"]},
        "concurrency": None,  # a nested null is a value: it replaces the mapping
        "keep": 1,
    }


def test_type_clashes_follow_yq():
    # a mapping onto a scalar or a list: the overlay's mapping replaces it
    assert data("a: text\nb: [1, 2]\n", "a: {x: 1}\nb: {y: 2}\n") == {"a": {"x": 1}, "b": {"y": 2}}
    # a scalar onto a mapping or a list: the scalar replaces it
    assert data("a: {x: 1}\nb: [1]\n", "a: 5\nb: off\n") == {"a": 5, "b": False}


@pytest.mark.parametrize(
    ("base", "overlay", "where"),
    [
        ("a: {x: 1}\n", "a: [1]\n", "ov.yaml:1: a: cannot merge a list into a mapping"),
        ("a:\n  b: text\n", "a:\n  b:\n    - 1\n", "ov.yaml:2: a.b: cannot merge a list into the "
         "scalar 'text'"),
        ("a: 1\n", "- 1\n", "ov.yaml:1: (top level): cannot merge a list into a mapping"),
        ("- 1\n", "a: 1\n", "ov.yaml:1: (top level): cannot merge a mapping into a list"),
    ],
)
def test_merges_yq_refuses_name_the_overlay_path_and_line(base, overlay, where):
    with pytest.raises(ConfigError) as err:
        merged(base, overlay)
    assert str(err.value).startswith(where)


def test_scalars_keep_their_written_text_and_style():
    out = merged(
        'build:\n  python_version: 3.10\n  cuda: "12.1"\n',
        "build:\n  gpu: true\n  cudnn: '9'\n",
    )
    assert "python_version: 3.10\n" in out  # never the float 3.1
    assert 'cuda: "12.1"' in out and "cudnn: '9'" in out
    assert "gpu: true" in out


def test_the_base_is_not_changed_in_place_and_flow_style_of_the_base_is_kept():
    out = merged("a: {x: 1}\nl: [1]\n", "a: {y: 2}\nl: [2]\n")
    assert "a: {x: 1, y: 2}" in out and "l: [1, 2]" in out


def test_invalid_yaml_and_several_documents_name_the_file():
    with pytest.raises(ConfigError, match=r"^ov.yaml:2: invalid YAML"):
        merged("a: 1\n", "a: 1\n@b: 2\n")
    with pytest.raises(ConfigError, match=r"^base.yaml: expected one YAML document, found 2"):
        merged("a: 1\n---\nb: 2\n", "a: 1\n")


def test_the_text_is_laid_out_as_yq_v4_prints_it():
    # a base of the model-ci-template shape: a comment header, comments above entries,
    # blank lines, quoted strings, a list under a key, a block scalar with a blank line
    base = """\
        # the model's build
        # (a second line)

        build:
          # no GPU here
          gpu: false
          cuda: "12.4"    # the driver's

          python_version: '3.11'

          python_packages:
          - "alpha==1.0"
          - beta


          # after the packages
          run:
            - |
              echo one

              echo two
        # the end of build

        predict: "predict.py:Base"
        """
    overlay = """\
        build:
          python_packages:
            - gamma
        predict: predict.py:Fast
        image: r8.im/acme/fast
        """
    assert merged(base, overlay) == textwrap.dedent("""\
        # the model's build
        # (a second line)

        build:
          # no GPU here
          gpu: false
          cuda: "12.4" # the driver's
          python_version: '3.11'
          python_packages:
            - "alpha==1.0"
            - beta
            - gamma
          # after the packages
          run:
            - |
              echo one

              echo two
        # the end of build

        predict: "predict.py:Fast"
        image: r8.im/acme/fast
        """)


def test_other_document_shapes_read_back_as_the_merge():
    # a top-level list, a base of comments alone: what is written reads back as the merge
    assert data("- a\n", "- b\n") == ["a", "b"]
    assert data("# only a comment\n", "a: 1\n") == {"a": 1}


def test_yq_star_replaces_lists_and_keeps_the_next_entrys_comments():
    base = """\
        build:
          python_packages:
            - "alpha==1.0"
            - beta
          # after the packages
          run: [echo base]
        environment:
          - A=1
        """
    overlay = """\
        build:
          python_packages:
            - gamma
          run:
            - echo fast
        """
    out = merge_overlay(textwrap.dedent(base), textwrap.dedent(overlay), "base.yaml", "ov.yaml",
                        append_lists=False)
    assert out == textwrap.dedent("""\
        build:
          python_packages:
            - gamma
          # after the packages
          run:
            - echo fast
        environment:
          - A=1
        """)
    # with *+, the same overlay appends
    assert data(base, overlay)["build"] == {"python_packages": ["alpha==1.0", "beta", "gamma"],
                                            "run": ["echo base", "echo fast"]}
