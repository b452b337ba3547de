"""HTCondor's own token minting, for tests: ``Condor_Auth_Passwd::generate_token`` (htcondor/htcondor 7491a14
src/condor_io/condor_auth_passwd.cpp), called in the installed bindings' libcondor_utils through ctypes — what
``condor_token_create -key <name> -identity <id> -lifetime <s> -authz …`` calls (condor_token_create.cpp), which
the wheel does not ship.

The library is HTCondor's C++ and exports the function under its mangled name, which depends on the version
(pyproject allows htcondor>=24.0,<26). Every tag from v24.0.1 to v25.5.1 declares seven arguments
(src/condor_includes/condor_auth_passwd.h):

    bool generate_token(const std::string &id, const std::string &key_id, const std::vector<std::string> &authz_list,
                        long lifetime, std::string &token, int ident, CondorError *err)

and from v25.6.1 on (7491a14 too) nine, a ``bool capability`` before the token and ``extra_claims`` at the end:

    bool generate_token(const std::string &id, const std::string &key_id, const std::vector<std::string> &authz_list,
                        long lifetime, bool capability, std::string &token, int ident, CondorError *err,
                        const ClassAd *extra_claims)

``SEVEN`` and ``NINE`` in the child are the two manglings (the Itanium C++ ABI's, as g++ writes them for these
declarations: the seven is the nine without ``b`` and ``PKN7classad7ClassAdE``; a builtin type takes no
substitution, so ``RS5_`` is the same in both), each called with its own argument list; the 9-argument one is what
25.14.1's library exports, the 7-argument one what 25.0.13's does (``nm -D``). Exactly one libcondor_utils must be
in the wheel; if it exports neither symbol, the test that compares tokens is skipped, saying so.

The strings are libstdc++'s (the ``__cxx11`` ABI in the symbol): a pointer, a length and a 16-byte buffer that
holds the capacity when the text is elsewhere. The inputs are built pointing at Python's bytes (the callee reads
them through const references and never frees them); the output starts as an empty string in its own buffer, and
``token = jwt_token`` allocates a new one, read and left to leak with the child process. A vector is three
pointers (begin, end, end of storage). ``err`` is a zeroed CondorError (four words: ``_subsys``, ``_code``,
``_message``, ``_next``; CondorError.h, the same in both versions), whose ``_message`` says why a mint failed;
``ident`` 0, no capability and no extra claims, as condor_token_create passes.

The function reads its configuration (TRUST_DOMAIN, SEC_PASSWORD_DIRECTORY) and the key file itself, so it runs
in a child process with a config of its own (the bindings' configuration is process-global).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

_MINT = r"""
import ctypes, glob, json, os, sys
import htcondor2  # loads libcondor_utils and reads $CONDOR_CONFIG
identity, key_id, authz, lifetime = json.loads(sys.argv[1])
libs = glob.glob(os.path.join(os.path.dirname(htcondor2.__file__), "..", "htcondor.libs", "libcondor_utils_*.so"))
if len(libs) != 1:
    json.dump({"libraries": sorted(libs)}, sys.stdout)
    sys.exit(0)
lib = ctypes.CDLL(libs[0])

class String(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_size_t), ("buf", ctypes.c_char * 16)]

kept = []
def string_in(text):
    data = ctypes.create_string_buffer(text.encode(), len(text.encode()) + 1)
    kept.append(data)
    s = String(ctypes.cast(data, ctypes.c_void_p), len(text.encode()))
    ctypes.c_size_t.from_buffer(s, 16).value = max(len(text.encode()), 15)  # the capacity
    return s

def string_out():
    s = String()
    s.ptr = ctypes.addressof(s) + 16  # empty, in its own buffer
    return s

class Vector(ctypes.Structure):
    _fields_ = [("begin", ctypes.c_void_p), ("end", ctypes.c_void_p), ("cap", ctypes.c_void_p)]

items = (String * max(len(authz), 1))(*[string_in(a) for a in authz])
end = ctypes.addressof(items) + ctypes.sizeof(String) * len(authz)
vector = Vector(ctypes.addressof(items) if authz else None, end if authz else None, end if authz else None)
STRING_REFS = ("_ZN18Condor_Auth_Passwd14generate_tokenERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEES7_"
               "RKSt6vectorIS5_SaIS5_EEl")
SEVEN = STRING_REFS + "RS5_iP11CondorError"  # v24.0.1 .. v25.5.1
NINE = STRING_REFS + "bRS5_iP11CondorErrorPKN7classad7ClassAdE"  # v25.6.1 on
found = [name for name in (SEVEN, NINE) if hasattr(lib, name)]
if len(found) != 1:
    json.dump({"symbols": found, "library": libs[0]}, sys.stdout)
    sys.exit(0)
generate = getattr(lib, found[0])
generate.restype = ctypes.c_bool
ident, key, token = string_in(identity), string_in(key_id), string_out()
error = (ctypes.c_char * 32)()
inputs = [ctypes.byref(ident), ctypes.byref(key), ctypes.byref(vector), lifetime]
if found[0] == NINE:
    generate.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long, ctypes.c_bool, ctypes.c_void_p, ctypes.c_int,
                                                  ctypes.c_void_p, ctypes.c_void_p]
    ok = generate(*inputs, False, ctypes.byref(token), 0, error, None)
else:
    generate.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    ok = generate(*inputs, ctypes.byref(token), 0, error)
message = ctypes.c_void_p.from_buffer(error, 16).value
json.dump({"ok": ok, "token": ctypes.string_at(token.ptr, token.len).decode() if ok else None,
           "error": ctypes.string_at(message).decode() if message else None}, sys.stdout)
"""


def htcondor_mint(key_file: bytes, *, key_name: str, trust_domain: str, identity: str, authz: Sequence[str],
                  lifetime: int, workdir: Path) -> str:
    """The token HTCondor mints now with the named key whose file holds ``key_file``; raises if it refuses."""
    keys = workdir / "passwords.d"
    keys.mkdir(exist_ok=True)
    key = keys / key_name
    # read_secure_file (secure_file.cpp): owned by the reading uid, no group or other bits.
    key.touch(mode=0o600)
    key.chmod(0o600)
    key.write_bytes(key_file)
    config = workdir / "condor_config"
    config.write_text(f"SEC_PASSWORD_DIRECTORY = {keys}\nTRUST_DOMAIN = {trust_domain}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("_CONDOR_")}
    env["CONDOR_CONFIG"] = str(config)
    result = subprocess.run([sys.executable, "-c", _MINT, json.dumps([identity, key_name, list(authz), lifetime])],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"driving HTCondor's generate_token failed: {result.stderr[-2000:]}")
    out = json.loads(result.stdout)
    if "libraries" in out:
        raise AssertionError(f"expected exactly one libcondor_utils in the htcondor wheel, found {out['libraries']}")
    if "symbols" in out:
        if out["symbols"]:
            raise AssertionError(f"{out['library']} exports both generate_token signatures: {out['symbols']}")
        pytest.skip(f"{Path(out['library']).name} exports neither known mangling of Condor_Auth_Passwd::generate_token "
                    "(7 arguments, htcondor v24.0.1-v25.5.1; 9 arguments, v25.6.1 on): cannot compare with HTCondor's "
                    "own token")
    if not out["ok"]:
        raise RuntimeError(f"HTCondor refused to mint: {out['error']}")
    token: str = out["token"]
    return token
