"""Native builds cache one object per source: sources that see the generated tables are
keyed by them (and rebuilt when they change); the others are compiled without the
generated dirs on their include path and shared by every model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinyfed_toolchain.facts.manifests import fl_device_sources, verify_sources
from tinyfed_toolchain.image.native_cc import CompileError, compile_native, model_dependent_sources

MAIN = r"""
#include <stdio.h>
#include "wrap.h"
int helper(void);
int main(void) {
#if __has_include("opt.h")
    printf("%d %d opt\n", WRAPPED, helper());
#else
    printf("%d %d\n", WRAPPED, helper());
#endif
    return 0;
}
"""


def tree(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """src/main.c includes src/wrap.h, which includes the generated cfg.h (not named in
    main.c); src/helper.c includes nothing generated; two generated dirs."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.c").write_text(MAIN)
    (src / "wrap.h").write_text('#include "cfg.h"\n#define WRAPPED (VALUE * 10)\n')
    (src / "helper.c").write_text("int helper(void);\nint helper(void) { return 7; }\n")
    gen1, gen2 = tmp_path / "gen1", tmp_path / "gen2"
    for i, g in enumerate((gen1, gen2), 1):
        g.mkdir()
        (g / "cfg.h").write_text(f"#define VALUE {i}\n")
    return src / "main.c", src / "helper.c", gen1, gen2


def run(exe: Path) -> str:
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def objects(cache: Path) -> set[str]:
    return {p.name for p in (cache / "obj").glob("*.o")}


def test_generated_headers_key_only_the_sources_that_see_them(tmp_path: Path) -> None:
    main, helper, gen1, gen2 = tree(tmp_path)
    cache = tmp_path / "cache"
    assert run(compile_native([main, helper], [gen1], "prog", cache_dir=cache)) == "10 7"
    first = objects(cache)
    assert len(first) == 2
    # another generated dir: main.c (through wrap.h) is compiled again, helper.c is not
    assert run(compile_native([main, helper], [gen2], "prog", cache_dir=cache)) == "20 7"
    second = objects(cache) - first
    assert len(second) == 1 and next(iter(second)).startswith("main-")
    # the same dir with new contents: rebuilt, never the stale object
    (gen1 / "cfg.h").write_text("#define VALUE 3\n")
    assert run(compile_native([main, helper], [gen1], "prog", cache_dir=cache)) == "30 7"
    # a header that only exists in the generated dir, asked with __has_include
    (gen2 / "opt.h").write_text("\n")
    assert run(compile_native([main, helper], [gen2], "prog", cache_dir=cache)) == "20 7 opt"
    # a source's own headers are part of its key
    (main.parent / "wrap.h").write_text('#include "cfg.h"\n#define WRAPPED (VALUE * 100)\n')
    assert run(compile_native([main, helper], [gen2], "prog", cache_dir=cache)) == "200 7 opt"
    # five builds of main.c, one of helper.c
    assert sorted(o.split('-')[0] for o in objects(cache)) == ['helper'] + ['main'] * 5


def test_a_computed_include_is_compiled_per_generated_dir(tmp_path: Path) -> None:
    """An include whose name a macro computes could be a generated header: the source
    is compiled with (and keyed by) the generated dirs."""
    _, helper, gen1, gen2 = tree(tmp_path)
    src = tmp_path / "src"
    (src / "computed.c").write_text('#include <stdio.h>\n#define CFG "cfg.h"\n#include CFG\n'
                                    'int main(void) { printf("%d\\n", VALUE); return 0; }\n')
    (src / "asked.c").write_text('#include <stdio.h>\n#define OPT "opt.h"\n'
                                 'int main(void) {\n#if __has_include(OPT)\n puts("opt");\n#else\n puts("none");\n'
                                 '#endif\n return 0; }\n')
    (gen2 / "opt.h").write_text("\n")
    cache = tmp_path / "cache"
    assert run(compile_native([src / "computed.c", helper], [gen1], "computed", cache_dir=cache)) == "1"
    assert run(compile_native([src / "computed.c", helper], [gen2], "computed", cache_dir=cache)) == "2"
    assert run(compile_native([src / "asked.c"], [gen1], "asked", cache_dir=cache)) == "none"
    assert run(compile_native([src / "asked.c"], [gen2], "asked", cache_dir=cache)) == "opt"


def test_a_compile_error_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return missing; }\n")
    with pytest.raises(CompileError, match=r"native compile of bad.c failed \(gcc\)") as e:
        compile_native([bad], [], "bad", cache_dir=tmp_path / "cache", cc="gcc")
    assert "missing" in str(e.value)
    assert not list((tmp_path / "cache").rglob("*.tmp")) and not list((tmp_path / "cache").glob("bad-*"))


def test_device_sources_that_see_the_model(tmp_path: Path) -> None:
    """Of the whole device, only the tables and the harnesses that include them are
    compiled per model (checked on a folder with the generated files' names)."""
    for name in ("model_data.c", "model_data.h", "train_data.c", "train_data.h"):
        (tmp_path / name).write_text("\n")
    dependent = model_dependent_sources(fl_device_sources(tmp_path), [tmp_path], monocypher=True)
    assert sorted(p.name for p in dependent) == ["fl_device_host.c", "model_data.c", "train_data.c"]
    assert len(fl_device_sources(tmp_path)) > 40
    dependent = model_dependent_sources(verify_sources(tmp_path), [tmp_path])
    assert sorted(p.name for p in dependent) == ["model_data.c", "verify_main.c"]
