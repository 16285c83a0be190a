//! NumPy `.npz` archives: zip files of `.npy` entries, as `np.savez` (stored) and
//! `np.savez_compressed` (deflated) write them.
//!
//! Reading is bounded: every entry's declared size is checked against what its `.npy` header
//! needs and against a total budget of decompressed bytes ([`DEFAULT_NPZ_LIMIT`] unless given),
//! and nothing is allocated on a declared size alone, so a zip bomb fails with
//! [`Error::TooLarge`] or [`Error::Format`] instead of exhausting memory.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, Write};
use std::path::Path;

use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::io::npy::{
    encoded_len, read_error, read_npy_from, sub_origin, write_npy_to, NpyArray, NpyArrayRef, Source,
};

/// Default limit on the total decompressed size of the arrays read from one archive: 8 GiB.
pub const DEFAULT_NPZ_LIMIT: u64 = 8 << 30;

/// Reads every array of an `.npz` archive, in archive order, named as in `np.savez` (entry names
/// without their `.npy` suffix). Stored and deflated entries are supported; at most
/// [`DEFAULT_NPZ_LIMIT`] bytes are decompressed in total.
pub fn read_npz(path: impl AsRef<Path>) -> Result<Vec<(String, NpyArray)>> {
    read_npz_with_limit(path, DEFAULT_NPZ_LIMIT)
}

/// [`read_npz`] with an explicit limit, in bytes, on the total decompressed size.
pub fn read_npz_with_limit(path: impl AsRef<Path>, limit: u64) -> Result<Vec<(String, NpyArray)>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    npz_from_reader(io::BufReader::new(file), path, limit)
}

/// Parses the bytes of a complete `.npz` archive (see [`read_npz`]); `origin` names the source in
/// error messages.
pub fn parse_npz(bytes: &[u8], origin: &Path) -> Result<Vec<(String, NpyArray)>> {
    parse_npz_with_limit(bytes, origin, DEFAULT_NPZ_LIMIT)
}

/// [`parse_npz`] with an explicit limit, in bytes, on the total decompressed size.
pub fn parse_npz_with_limit(
    bytes: &[u8],
    origin: &Path,
    limit: u64,
) -> Result<Vec<(String, NpyArray)>> {
    npz_from_reader(Cursor::new(bytes), origin, limit)
}

fn zip_error(origin: &Path, e: ZipError) -> Error {
    let reason = match e {
        ZipError::Io(e) => return read_error(origin, e),
        ZipError::InvalidArchive(msg) => {
            format!("not a valid .npz (zip) archive: {msg}")
        }
        ZipError::UnsupportedArchive(msg) => format!(
            "unsupported zip feature: {msg} (only stored and deflated entries are supported)"
        ),
        other => format!("zip error: {other}"),
    };
    Error::Format {
        path: origin.to_path_buf(),
        reason,
    }
}

fn npz_from_reader<R: Read + Seek>(
    mut reader: R,
    origin: &Path,
    limit: u64,
) -> Result<Vec<(String, NpyArray)>> {
    // A friendlier message than "could not find EOCD" for the most likely mistake.
    let mut magic = [0u8; 6];
    let n = read_prefix(&mut reader, &mut magic).map_err(|e| read_error(origin, e))?;
    if magic[..n].starts_with(crate::io::npy::NPY_MAGIC) {
        return Err(Error::Format {
            path: origin.to_path_buf(),
            reason: "this is a .npy file, not a .npz archive".into(),
        });
    }
    let mut archive = ZipArchive::new(reader).map_err(|e| zip_error(origin, e))?;
    let mut budget = limit;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| zip_error(origin, e))?;
        if entry.is_dir() {
            continue;
        }
        let full_name = entry.name().to_string();
        let entry_origin = sub_origin(origin, &full_name);
        match entry.compression() {
            CompressionMethod::Stored | CompressionMethod::Deflated => {}
            other => {
                return Err(Error::Format {
                    path: entry_origin,
                    reason: format!(
                        "compression method {other:?} is not supported (only stored and deflated)"
                    ),
                })
            }
        }
        let declared = entry.size();
        if declared > budget {
            return Err(Error::TooLarge {
                what: format!("{} (decompressed)", entry_origin.display()),
                bytes: u128::from(limit - budget) + u128::from(declared),
                limit: u128::from(limit),
            });
        }
        budget -= declared;
        // Never read past the declared size (plus one byte, to notice a lie).
        let mut limited = (&mut entry).take(declared.saturating_add(1));
        let array = read_npy_from(&mut limited, &entry_origin, Source::Claimed(declared))?;
        let name = full_name
            .strip_suffix(".npy")
            .unwrap_or(&full_name)
            .to_string();
        out.push((name, array));
    }
    Ok(out)
}

/// Reads up to `buf.len()` bytes from the start, then rewinds.
fn read_prefix<R: Read + Seek>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    r.seek(io::SeekFrom::Start(0))?;
    Ok(filled)
}

/// Checks entry names: non-empty, unique, no path separators.
fn check_names(entries: &[(&str, NpyArrayRef<'_>)]) -> Result<()> {
    for (i, (name, _)) in entries.iter().enumerate() {
        if name.is_empty() || name.contains(['/', '\\', '\0']) {
            return Err(Error::param(
                "npz entry name",
                format!(
                    "'{}' must be non-empty, without '/', '\\' or NUL",
                    name.escape_default()
                ),
            ));
        }
        if entries[..i].iter().any(|(other, _)| other == name) {
            return Err(Error::param(
                "npz entry name",
                format!("'{}' appears twice", name.escape_default()),
            ));
        }
    }
    Ok(())
}

fn write_npz_to<W: Write + Seek>(w: W, entries: &[(&str, NpyArrayRef<'_>)]) -> io::Result<W> {
    let mut zip = ZipWriter::new(w);
    for (name, array) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(encoded_len(array) >= u64::from(u32::MAX));
        zip.start_file(format!("{name}.npy"), options)?;
        write_npy_to(&mut zip, array)?;
    }
    Ok(zip.finish()?)
}

/// Writes arrays to an `.npz` archive (stored, like `np.savez`), atomically. Each entry is
/// `name.npy`; names must be non-empty, unique and free of path separators.
pub fn write_npz(path: impl AsRef<Path>, entries: &[(&str, NpyArrayRef<'_>)]) -> Result<()> {
    check_names(entries)?;
    write_atomic(path, |w| write_npz_to(w, entries).map(drop))
}

/// The bytes of the `.npz` archive [`write_npz`] would write.
pub fn encode_npz(entries: &[(&str, NpyArrayRef<'_>)]) -> Result<Vec<u8>> {
    check_names(entries)?;
    let cursor = write_npz_to(Cursor::new(Vec::new()), entries).map_err(|source| Error::Io {
        path: "<memory>".into(),
        source,
    })?;
    Ok(cursor.into_inner())
}
