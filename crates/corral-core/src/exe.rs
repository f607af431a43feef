//! What an executable needs to start, read from its first bytes: the ELF program interpreter
//! (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) or a script's `#!` interpreter. Used when
//! `capabilities.allow_shell = false`: Landlock's execute right then covers only the command, what
//! the kernel must execute to start it, and `capabilities.exec`. Pure: bytes in, path out.

/// `PT_INTERP` from `<elf.h>`.
const PT_INTERP: u32 = 3;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The program interpreter of a 64-bit little-endian ELF file (x86_64, aarch64), if it has one.
/// Offsets from the System V ABI (e_phoff at 0x20, e_phentsize 0x36, e_phnum 0x38; in a program
/// header p_offset at +8, p_filesz at +32).
pub fn elf_interpreter(bytes: &[u8]) -> Option<String> {
    if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
        return None;
    }
    let phoff = usize::try_from(u64_at(bytes, 0x20)?).ok()?;
    let phentsize = usize::from(u16_at(bytes, 0x36)?);
    let phnum = usize::from(u16_at(bytes, 0x38)?);
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(bytes, ph)? == PT_INTERP {
            let off = usize::try_from(u64_at(bytes, ph + 8)?).ok()?;
            let len = usize::try_from(u64_at(bytes, ph + 32)?).ok()?;
            let raw = bytes.get(off..off.checked_add(len)?)?;
            let raw = raw.split(|b| *b == 0).next()?;
            return std::str::from_utf8(raw).ok().map(String::from);
        }
    }
    None
}

/// The interpreter of a `#!` script (the first word after `#!`).
pub fn shebang(bytes: &[u8]) -> Option<String> {
    let rest = bytes.strip_prefix(b"#!")?;
    let line = rest.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.split_whitespace().next().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_interpreter_of_a_real_binary_layout() {
        // A minimal ELF64 header with one PT_INTERP program header pointing at a path.
        let mut b = vec![0u8; 0x100];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes()); // e_phoff
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[0x40..0x44].copy_from_slice(&PT_INTERP.to_le_bytes());
        b[0x48..0x50].copy_from_slice(&0x80u64.to_le_bytes()); // p_offset
        let path = b"/lib64/ld-linux-x86-64.so.2\0";
        b[0x60..0x68].copy_from_slice(&(path.len() as u64).to_le_bytes()); // p_filesz
        b[0x80..0x80 + path.len()].copy_from_slice(path);
        assert_eq!(
            elf_interpreter(&b).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(elf_interpreter(&b[..0x50]), None, "truncated");
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn reads_a_shebang() {
        assert_eq!(
            shebang(b"#!/usr/bin/python3 -u\nprint(1)\n").as_deref(),
            Some("/usr/bin/python3")
        );
        assert_eq!(shebang(b"#! /bin/sh\n").as_deref(), Some("/bin/sh"));
        assert_eq!(shebang(b"\x7fELF"), None);
    }
}
