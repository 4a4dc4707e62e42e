"""Writes src/keyward/_async_resources.py from src/keyward/_resources.py (run by generate.sh).

The async resources are the sync ones with every call to the API awaited: one source, so the
two clients cannot drift apart. Usage: unasync.py SRC DST
"""

import re
import sys

CLASSES = ["Keys", "Roles", "ServiceAccounts", "Usage", "VerifyTokens", "Webhooks", "Verification", "RateLimits"]


def convert(src: str) -> str:
    out = src.replace(
        '"""The API\'s resources for the sync client. ``_async_resources.py`` is made from this file by\n'
        '``generate.sh`` (``tools/unasync.py``): edit this one."""',
        '"""The API\'s resources for the async client. Made from ``_resources.py`` by ``generate.sh``\n'
        '(``tools/unasync.py``): do not edit."""',
    )
    out = re.sub(r"(?m)^    def (?!__init__)", "    async def ", out)
    out = out.replace("self._c._call(", "await self._c._call(")
    out = out.replace("return await self._c._call(", "return await self._c._call(")
    out = re.sub(r"= self\.(list)\(", r"= await self.\1(", out)
    out = out.replace("Iterator[", "AsyncIterator[").replace("import Any, Dict, Iterator,", "import Any, AsyncIterator, Dict,")
    for c in CLASSES:
        out = re.sub(rf"\bclass {c}\b", f"class Async{c}", out)
    out = re.sub(r'__all__ = \[(.*)\]', lambda mm: "__all__ = [" + re.sub(r'"(\w+)"', r'"Async\1"', mm.group(1)) + "]", out)
    return out


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = convert(f.read())
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)
