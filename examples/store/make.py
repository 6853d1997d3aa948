#!/usr/bin/env python3
"""Regenerates the example store in this directory, byte for byte.

Two store paths, laid out as a `dir` store reads them:
  <hash>-hello-greeting/share/greeting   a text file with the greeting
  <hash>-hello-static/bin/hello          a static x86-64 Linux ELF (a few hundred bytes, no libc)
                                         that opens the greeting file by its store path, copies
                                         it to stdout and exits: so it references the first path,
                                         and the closure of hello-static has 2 paths.

The machine code is hand-assembled below (no assembler needed); `objdump -D -b binary -m i386:x86-64`
on the file disassembles it. Store path hashes are 32-char nix-base32 strings derived from the
content (sha256, truncated to 160 bits like Nix's store path hashes, in Nix's base32 encoding).
They are not the hashes Nix itself would give these paths: nixdock only needs well-formed ones.

Usage: python3 examples/store/make.py   (run from anywhere)
"""
import hashlib
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
STORE_DIR = "/nix/store"
GREETING = b"Hello from nixdock! This image was built from a store-layout directory, no Nix needed.\n"
NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"
LOAD_ADDRESS = 0x400000
ELF_HEADER_SIZE = 64
PROGRAM_HEADER_SIZE = 56


def nix_base32(data):
    """Nix's base32: 5-bit groups taken from the end of the byte string."""
    length = (len(data) * 8 - 1) // 5 + 1
    chars = []
    for n in range(length - 1, -1, -1):
        bit = n * 5
        i, shift = divmod(bit, 8)
        value = data[i] >> shift
        if i + 1 < len(data):
            value |= data[i + 1] << (8 - shift)
        chars.append(NIX_BASE32[value & 0x1F])
    return "".join(chars)


def store_name(name, content):
    digest = hashlib.sha256(b"nixdock-example:" + name.encode() + b":" + hashlib.sha256(content).digest()).digest()
    return nix_base32(digest[:20]) + "-" + name


def machine_code(path):
    """Code followed by the NUL-terminated path: open(path) → read(fd, stack buffer, 4096) → write(1, …) → exit(0); exit(1) on any failure."""
    code = bytearray()
    code += b"\x48\x81\xec\x00\x10\x00\x00"  # sub rsp, 4096          ; read buffer on the stack
    code += b"\xb8\x02\x00\x00\x00"  # mov eax, 2 (open)
    lea_at = len(code)
    code += b"\x48\x8d\x3d\x00\x00\x00\x00"  # lea rdi, [rip + path]  ; patched below
    code += b"\x31\xf6"  # xor esi, esi (O_RDONLY)
    code += b"\x31\xd2"  # xor edx, edx
    code += b"\x0f\x05"  # syscall
    code += b"\x85\xc0"  # test eax, eax
    js_at = len(code)
    code += b"\x78\x00"  # js fail                 ; patched below
    code += b"\x89\xc7"  # mov edi, eax (fd)
    code += b"\x31\xc0"  # xor eax, eax (read)
    code += b"\x48\x89\xe6"  # mov rsi, rsp
    code += b"\xba\x00\x10\x00\x00"  # mov edx, 4096
    code += b"\x0f\x05"  # syscall
    code += b"\x85\xc0"  # test eax, eax
    jle_at = len(code)
    code += b"\x7e\x00"  # jle fail                ; patched below
    code += b"\x89\xc2"  # mov edx, eax (count)
    code += b"\xbf\x01\x00\x00\x00"  # mov edi, 1 (stdout)
    code += b"\xb8\x01\x00\x00\x00"  # mov eax, 1 (write)
    code += b"\x0f\x05"  # syscall
    code += b"\x31\xff"  # xor edi, edi
    code += b"\xb8\x3c\x00\x00\x00"  # mov eax, 60 (exit)
    code += b"\x0f\x05"  # syscall
    fail = len(code)
    code += b"\xbf\x01\x00\x00\x00"  # fail: mov edi, 1
    code += b"\xb8\x3c\x00\x00\x00"  # mov eax, 60 (exit)
    code += b"\x0f\x05"  # syscall
    code[js_at + 1] = fail - (js_at + 2)
    code[jle_at + 1] = fail - (jle_at + 2)
    # rip-relative: the displacement counts from the end of the lea instruction.
    struct.pack_into("<i", code, lea_at + 3, len(code) - (lea_at + 7))
    return bytes(code + path)


def elf(greeting_path):
    path = greeting_path.encode() + b"\x00"
    code_offset = ELF_HEADER_SIZE + PROGRAM_HEADER_SIZE
    code = machine_code(path)
    size = code_offset + len(code)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header += struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, LOAD_ADDRESS + code_offset, ELF_HEADER_SIZE, 0, 0,
                          ELF_HEADER_SIZE, PROGRAM_HEADER_SIZE, 1, 0, 0, 0)
    # One PT_LOAD segment, read + execute, mapping the whole file.
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, LOAD_ADDRESS, LOAD_ADDRESS, size, size, 0x1000)
    return header + program + code


def write(path, content, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, mode)


def make_read_only(top):
    """Store permissions, as Nix leaves them: directories 0555 (files were set when written)."""
    for root, dirs, _files in os.walk(top, topdown=False):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o555)
    os.chmod(top, 0o555)


def main():
    for entry in os.listdir(HERE):
        if entry.endswith(("-hello-greeting", "-hello-static")):
            for root, dirs, _files in os.walk(os.path.join(HERE, entry)):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o755)
            os.chmod(os.path.join(HERE, entry), 0o755)
            shutil.rmtree(os.path.join(HERE, entry))

    greeting_name = store_name("hello-greeting", GREETING)
    write(os.path.join(HERE, greeting_name, "share", "greeting"), GREETING, 0o444)
    make_read_only(os.path.join(HERE, greeting_name))

    binary = elf(f"{STORE_DIR}/{greeting_name}/share/greeting")
    hello_name = store_name("hello-static", binary)
    write(os.path.join(HERE, hello_name, "bin", "hello"), binary, 0o555)
    make_read_only(os.path.join(HERE, hello_name))
    print(f"{STORE_DIR}/{hello_name}/bin/hello ({len(binary)} bytes) reads {STORE_DIR}/{greeting_name}/share/greeting")


if __name__ == "__main__":
    main()
