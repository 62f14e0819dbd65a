#!/usr/bin/env python3
"""Makes the linker's order file from the functions a traced daemon executed.

Usage: layout/order.py MAP OUT CALLGRIND_FILE...

MAP is the map of the very executable that was traced (`CLEARSKIES_LINK_MAP=MAP cargo build
--release`, see build.rs); the callgrind files come from trace.py. Every instruction address
executed in a `clearskies worker` is looked up among the map's input sections of `.text`; each
section hit is named by its first symbol, in address order (which keeps code of one crate
together), one per line: LLD's --symbol-ordering-file.
"""

import bisect
import re
import sys

# VMA, LMA, size, alignment, then the name, indented by 1 (output section), 9 (input
# section) or 17 (symbol) spaces.
LINE = re.compile(r"^\s*([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\d+)( +)(.*)$")


def text_sections(map_path):
    """[start, size, [symbols]] of each input section of .text, by address."""
    sections, out = [], None
    with open(map_path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            depth, name = len(m.group(5)), m.group(6)
            if depth == 1:
                out = name
            elif out != ".text":
                continue
            elif depth == 9:
                sections.append([int(m.group(1), 16), int(m.group(3), 16), []])
            elif depth == 17 and sections:
                sections[-1][2].append(name)
    sections.sort(key=lambda s: s[0])
    return sections


def executed(callgrind_paths, exe_suffix="/clearskies"):
    """Instruction addresses executed in the executable, from callgrind --dump-instr files.
    Only the workers' (`clearskies worker`): the commands' own code (`start`, argument
    parsing) would only lengthen the run a worker touches."""
    seen = set()
    for path in callgrind_paths:
        obj = None
        with open(path) as f:
            for line in f:
                if line.startswith("cmd:") and not line.rstrip().endswith(exe_suffix + " worker"):
                    break
                if line.startswith("ob="):
                    obj = line[3:].strip()
                elif line.startswith("0x") and obj and obj.endswith(exe_suffix):
                    seen.add(int(line.split()[0], 16))
    return seen


def main():
    map_path, out_path, *traces = sys.argv[1:]
    sections = text_sections(map_path)
    starts = [s[0] for s in sections]
    hit = set()
    for addr in executed(traces):
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < sections[i][0] + max(sections[i][1], 1):
            hit.add(i)
    names = []
    for i in sorted(hit):
        symbols = [s for s in sections[i][2] if not s.startswith(".L")]
        if symbols:
            names.append(symbols[0])
    if not names:
        sys.exit("no executed function found: is MAP the map of the traced executable?")
    with open(out_path, "w") as f:
        f.write("\n".join(names) + "\n")
    size = sum(sections[i][1] for i in hit)
    total = sum(s[1] for s in sections)
    print(f"{len(names)} functions executed of {len(sections)}: {size / 2**20:.1f} MiB of "
          f"{total / 2**20:.1f} MiB of code", file=sys.stderr)


if __name__ == "__main__":
    main()
