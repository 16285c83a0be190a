//! NumPy `.npy` files: a hand-written reader that never panics and never trusts a header's sizes,
//! and a writer whose output is byte-for-byte what `np.save` writes.
//!
//! Format (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>): the magic
//! `\x93NUMPY`, a version (1.0, 2.0 or 3.0), the header length (u16 for 1.0, u32 after), a header
//! that is a Python dict literal with the keys `'descr'`, `'fortran_order'` and `'shape'`, then the
//! raw elements.
//!
//! Decisions:
//! - Supported dtypes: `<f4`, `<f8`, the integers `|i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8` and `|b1`.
//!   Integers and booleans are widened to `i64` (a `uint64` above `i64::MAX` is an error).
//! - Fortran-order data is transposed on read: [`NpyArray::data`] is always in C (row-major) order.
//! - Bytes after the data are rejected (numpy writes none; extra bytes usually mean a header whose
//!   shape is wrong, or several arrays saved into one file, and ignoring them would silently drop
//!   data).
//! - Empty arrays (a zero in the shape) are read and written like any other.

use std::any::Any;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::io::npy_header::parse_header_dict;
use crate::matrix::Matrix;
use crate::scalar::Real;

/// The six magic bytes every `.npy` file starts with.
pub const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header accepted (numpy's own loader stops at 10 000 bytes by default).
const MAX_HEADER_LEN: usize = 1 << 20;

/// Bytes decoded per read while streaming the data.
const CHUNK_BYTES: usize = 1 << 16;

/// Elements reserved up front when the length of the source is only claimed, not known.
const UNTRUSTED_RESERVE: usize = 1 << 16;

const SUPPORTED: &str = "<f4, <f8, |i1, <i2, <i4, <i8, |u1, <u2, <u4, <u8, |b1";

// ---------------------------------------------------------------------------------------------
// In-memory arrays
// ---------------------------------------------------------------------------------------------

/// The elements of an array read from a file, in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `float32` data.
    F32(Vec<f32>),
    /// `float64` data.
    F64(Vec<f64>),
    /// Integer or boolean data, widened to `int64`.
    I64(Vec<i64>),
}

impl NpyData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// NumPy's name of the element type: `"float32"`, `"float64"` or `"int64"`.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::I64(_) => "int64",
        }
    }

    /// Borrows the elements.
    pub fn as_data_ref(&self) -> NpyDataRef<'_> {
        match self {
            NpyData::F32(v) => NpyDataRef::F32(v),
            NpyData::F64(v) => NpyDataRef::F64(v),
            NpyData::I64(v) => NpyDataRef::I64(v),
        }
    }

    /// Converts every element to `T` (f64 -> f32 rounds; integers beyond 2^53 round).
    fn into_real<T: Real>(self) -> Vec<T> {
        match self {
            NpyData::F32(v) => cast_vec(v, |x| T::from_f64(f64::from(x))),
            NpyData::F64(v) => cast_vec(v, T::from_f64),
            NpyData::I64(v) => v.into_iter().map(|x| T::from_f64(x as f64)).collect(),
        }
    }
}

/// Returns `v` itself when `S` is `T`, else converts element by element.
fn cast_vec<S: Copy + 'static, T: 'static>(v: Vec<S>, f: impl Fn(S) -> T) -> Vec<T> {
    let boxed: Box<dyn Any> = Box::new(v);
    match boxed.downcast::<Vec<T>>() {
        Ok(same) => *same,
        Err(boxed) => match boxed.downcast::<Vec<S>>() {
            Ok(v) => v.into_iter().map(f).collect(),
            // The box was built from a Vec<S> two lines above.
            Err(_) => unreachable!("downcast to the original type cannot fail"),
        },
    }
}

/// An n-dimensional array read from (or to be written to) a `.npy` file.
///
/// `data.len()` equals the product of `shape` (1 for a 0-d array) for every array this module
/// returns; the fields are public, so arrays built by hand are checked again when written.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Dimensions, outermost first (`[nrows, ncols]` for a matrix).
    pub shape: Vec<usize>,
    /// Elements in C (row-major) order.
    pub data: NpyData,
}

impl NpyArray {
    /// Builds an array, checking that `data` has as many elements as `shape` describes.
    pub fn new(shape: Vec<usize>, data: NpyData) -> Result<Self> {
        check_shape(&shape, data.len())?;
        Ok(NpyArray { shape, data })
    }

    /// Copies a matrix into an array of shape `[nrows, ncols]` with the matrix's dtype.
    pub fn from_matrix<T: Real>(m: &Matrix<T>) -> Self {
        NpyArray {
            shape: vec![m.nrows(), m.ncols()],
            data: match real_slice(m) {
                NpyDataRef::F32(v) => NpyData::F32(v.to_vec()),
                NpyDataRef::F64(v) => NpyData::F64(v.to_vec()),
                NpyDataRef::I64(v) => NpyData::I64(v.to_vec()),
            },
        }
    }

    /// NumPy's name of the element type: `"float32"`, `"float64"` or `"int64"`.
    pub fn dtype_name(&self) -> &'static str {
        self.data.dtype_name()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Borrows the array for writing; fails if `data` does not match `shape`.
    pub fn view(&self) -> Result<NpyArrayRef<'_>> {
        NpyArrayRef::from_parts(self.shape.clone(), self.data.as_data_ref())
    }

    /// Turns a 2-D array into a matrix of `T`, converting the elements as needed (f64 -> f32
    /// rounds to nearest; integers are converted to the nearest float). `what` names the array
    /// in error messages.
    pub fn into_matrix<T: Real>(self, what: &str) -> Result<Matrix<T>> {
        self.check_len(what)?;
        let (nrows, ncols) = match self.shape[..] {
            [r, c] => (r, c),
            _ => {
                return Err(Error::Shape(format!(
                    "{what}: expected a 2-D array (samples x features), got shape {}",
                    fmt_shape(&self.shape)
                )))
            }
        };
        Matrix::from_vec(nrows, ncols, self.data.into_real())
    }

    /// Turns a 1-D array, or a 2-D array with one column or one row, into a vector of f64 (for
    /// labels and targets). `what` names the array in error messages.
    pub fn into_vec_f64(self, what: &str) -> Result<Vec<f64>> {
        self.check_len(what)?;
        match self.shape[..] {
            [_] | [_, 1] | [1, _] => Ok(self.data.into_real()),
            _ => Err(Error::Shape(format!(
                "{what}: expected a 1-D array (or a 2-D array with one column or one row), \
                 got shape {}",
                fmt_shape(&self.shape)
            ))),
        }
    }

    fn check_len(&self, what: &str) -> Result<()> {
        match element_count(&self.shape) {
            Some(n) if n == self.data.len() => Ok(()),
            _ => Err(Error::Shape(format!(
                "{what}: {} elements do not match shape {}",
                self.data.len(),
                fmt_shape(&self.shape)
            ))),
        }
    }
}

/// Borrowed elements of one of the writable dtypes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NpyDataRef<'a> {
    /// `float32` elements.
    F32(&'a [f32]),
    /// `float64` elements.
    F64(&'a [f64]),
    /// `int64` elements.
    I64(&'a [i64]),
}

impl NpyDataRef<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyDataRef::F32(v) => v.len(),
            NpyDataRef::F64(v) => v.len(),
            NpyDataRef::I64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `descr` written to the header: `"<f4"`, `"<f8"` or `"<i8"`.
    pub fn descr(&self) -> &'static str {
        match self {
            NpyDataRef::F32(_) => f32::DESCR,
            NpyDataRef::F64(_) => f64::DESCR,
            NpyDataRef::I64(_) => i64::DESCR,
        }
    }
}

/// A borrowed array ready to be written: a shape and matching elements (checked on construction).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArrayRef<'a> {
    shape: Vec<usize>,
    data: NpyDataRef<'a>,
}

impl<'a> NpyArrayRef<'a> {
    /// Wraps `data` (C order) with its `shape`; fails if the lengths disagree.
    pub fn new<T: NpyElement>(shape: &[usize], data: &'a [T]) -> Result<Self> {
        Self::from_parts(shape.to_vec(), T::data_ref(data))
    }

    /// Wraps borrowed elements with their shape; fails if the lengths disagree.
    pub fn from_parts(shape: Vec<usize>, data: NpyDataRef<'a>) -> Result<Self> {
        check_shape(&shape, data.len())?;
        Ok(NpyArrayRef { shape, data })
    }

    /// Borrows a matrix as a 2-D array of its own dtype.
    pub fn from_matrix<T: Real>(m: &'a Matrix<T>) -> Self {
        NpyArrayRef {
            shape: vec![m.nrows(), m.ncols()],
            data: real_slice(m),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements.
    pub fn data(&self) -> NpyDataRef<'a> {
        self.data
    }

    /// The complete `.npy` file as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(encoded_len(self)).unwrap_or(0));
        // Writing into a Vec cannot fail.
        let _ = write_npy_to(&mut out, self);
        out
    }
}

/// Borrows a matrix's elements as [`NpyDataRef`] without copying (`Real` is sealed to f32/f64).
fn real_slice<T: Real>(m: &Matrix<T>) -> NpyDataRef<'_> {
    let any: &dyn Any = m;
    if let Some(m) = any.downcast_ref::<Matrix<f32>>() {
        NpyDataRef::F32(m.as_slice())
    } else if let Some(m) = any.downcast_ref::<Matrix<f64>>() {
        NpyDataRef::F64(m.as_slice())
    } else {
        unreachable!("Real is implemented for f32 and f64 only")
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for i64 {}
}

/// Element types the writer accepts: `f32`, `f64` and `i64` (sealed).
pub trait NpyElement: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The header's `descr` for this type (`"<f4"`, `"<f8"`, `"<i8"`).
    const DESCR: &'static str;
    /// Borrows a slice of this type as [`NpyDataRef`].
    fn data_ref(data: &[Self]) -> NpyDataRef<'_>;
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn data_ref(data: &[Self]) -> NpyDataRef<'_> {
        NpyDataRef::F32(data)
    }
}

impl NpyElement for f64 {
    const DESCR: &'static str = "<f8";
    fn data_ref(data: &[Self]) -> NpyDataRef<'_> {
        NpyDataRef::F64(data)
    }
}

impl NpyElement for i64 {
    const DESCR: &'static str = "<i8";
    fn data_ref(data: &[Self]) -> NpyDataRef<'_> {
        NpyDataRef::I64(data)
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Reads a `.npy` file.
///
/// The header is checked against the file's length before any element buffer is allocated, so a
/// lying header costs nothing; see the [module docs](self) for the supported dtypes.
///
/// ```
/// use mmfuse::io::{read_npy, write_npy, NpyData};
/// let path = std::env::temp_dir().join(format!("mmfuse-doc-read-{}.npy", std::process::id()));
/// write_npy(&path, &[2, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// let arr = read_npy(&path)?;
/// assert_eq!(arr.shape, vec![2, 3]);
/// assert_eq!(arr.data, NpyData::F64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
/// let m = arr.into_matrix::<f32>("features")?;
/// assert_eq!(m.row(1), &[4.0f32, 5.0, 6.0]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        // A pipe or device has no length to check against: read it all, then parse.
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        return parse_npy(&bytes, path);
    }
    read_npy_from(&mut file, path, Source::Exact(meta.len()))
}

/// Parses the bytes of a complete `.npy` file; `origin` names the source in error messages.
pub fn parse_npy(bytes: &[u8], origin: &Path) -> Result<NpyArray> {
    let mut reader = bytes;
    read_npy_from(&mut reader, origin, Source::Exact(bytes.len() as u64))
}

/// What is known about the length of the stream a `.npy` is read from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source {
    /// The stream holds exactly this many bytes (a file's length, a slice's length).
    Exact(u64),
    /// The stream claims this many bytes (a zip entry's declared size) but may hold fewer: sizes
    /// are checked against it, but nothing is allocated on its word alone.
    Claimed(u64),
}

impl Source {
    fn len(self) -> u64 {
        match self {
            Source::Exact(n) | Source::Claimed(n) => n,
        }
    }
}

/// Maps an I/O error while reading: corrupt-data kinds become [`Error::Format`].
pub(crate) fn read_error(origin: &Path, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Error::Format {
            path: origin.to_path_buf(),
            reason: format!("corrupt data: {e}"),
        },
        _ => Error::Io {
            path: origin.to_path_buf(),
            source: e,
        },
    }
}

fn format_err(origin: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: origin.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads as many bytes as are available, up to `buf.len()`; returns how many were read.
fn read_up_to<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads one `.npy` from `r`, which must end right after the data.
pub(crate) fn read_npy_from<R: Read + ?Sized>(
    r: &mut R,
    origin: &Path,
    source: Source,
) -> Result<NpyArray> {
    let header = read_header(r, origin, source)?;
    let available = source.len().saturating_sub(header.data_offset);
    if available < header.nbytes {
        return Err(format_err(
            origin,
            format!(
                "truncated data: expected {} bytes of data, file has {available}",
                header.nbytes
            ),
        ));
    }
    if available > header.nbytes {
        return Err(trailing_error(origin, &header, available - header.nbytes));
    }
    let trusted = matches!(source, Source::Exact(_));
    let data = read_body(r, origin, &header, trusted)?;
    // Nothing may follow the data (this also lets a zip entry verify its checksum).
    let mut probe = [0u8; 1];
    if read_up_to(r, &mut probe).map_err(|e| read_error(origin, e))? != 0 {
        let rest = io::copy(r, &mut io::sink()).map_err(|e| read_error(origin, e))?;
        return Err(trailing_error(origin, &header, rest.saturating_add(1)));
    }
    let data = if header.fortran && header.shape.len() > 1 {
        match data {
            NpyData::F32(v) => NpyData::F32(fortran_to_c(&v, &header.shape)),
            NpyData::F64(v) => NpyData::F64(fortran_to_c(&v, &header.shape)),
            NpyData::I64(v) => NpyData::I64(fortran_to_c(&v, &header.shape)),
        }
    } else {
        data
    };
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

fn trailing_error(origin: &Path, header: &Header, extra: u64) -> Error {
    format_err(
        origin,
        format!(
            "{extra} unexpected bytes after the {} bytes of data that shape {} of {} needs \
             (wrong shape in the header, or several arrays saved into one file?)",
            header.nbytes,
            fmt_shape(&header.shape),
            header.kind.descr()
        ),
    )
}

/// The element types the reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    F4,
    F8,
    I1,
    I2,
    I4,
    I8,
    U1,
    U2,
    U4,
    U8,
    B1,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::I1 | Kind::U1 | Kind::B1 => 1,
            Kind::I2 | Kind::U2 => 2,
            Kind::F4 | Kind::I4 | Kind::U4 => 4,
            Kind::F8 | Kind::I8 | Kind::U8 => 8,
        }
    }

    fn descr(self) -> &'static str {
        match self {
            Kind::F4 => "<f4",
            Kind::F8 => "<f8",
            Kind::I1 => "|i1",
            Kind::I2 => "<i2",
            Kind::I4 => "<i4",
            Kind::I8 => "<i8",
            Kind::U1 => "|u1",
            Kind::U2 => "<u2",
            Kind::U4 => "<u4",
            Kind::U8 => "<u8",
            Kind::B1 => "|b1",
        }
    }

    fn empty_data(self, capacity: usize) -> NpyData {
        match self {
            Kind::F4 => NpyData::F32(Vec::with_capacity(capacity)),
            Kind::F8 => NpyData::F64(Vec::with_capacity(capacity)),
            _ => NpyData::I64(Vec::with_capacity(capacity)),
        }
    }
}

/// The parsed header.
#[derive(Debug)]
struct Header {
    kind: Kind,
    fortran: bool,
    shape: Vec<usize>,
    /// Bytes before the data (magic, version, length field, header).
    data_offset: u64,
    /// Bytes of data the shape and dtype call for.
    nbytes: u64,
}

fn read_header<R: Read + ?Sized>(r: &mut R, origin: &Path, source: Source) -> Result<Header> {
    let rd = |e| read_error(origin, e);
    let total = source.len();
    let mut pre = [0u8; 12];
    let got = read_up_to(r, &mut pre[..8]).map_err(rd)?;
    let head = &pre[..got];
    if got < NPY_MAGIC.len() || &head[..6] != NPY_MAGIC {
        if !NPY_MAGIC.starts_with(head) || got >= NPY_MAGIC.len() {
            let hint = if head.starts_with(b"PK") {
                " (this looks like a zip archive: an .npz file?)"
            } else {
                ""
            };
            return Err(format_err(
                origin,
                format!(
                    "not a .npy file: wrong magic (expected \\x93NUMPY, found {}){hint}",
                    escape_bytes(&head[..got.min(6)])
                ),
            ));
        }
        return Err(format_err(
            origin,
            format!("truncated header: file has only {got} bytes"),
        ));
    }
    if got < 8 {
        return Err(format_err(
            origin,
            format!("truncated header: file has only {got} bytes (no format version)"),
        ));
    }
    let (major, minor) = (pre[6], pre[7]);
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        _ => {
            return Err(format_err(
                origin,
                format!("unknown .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)"),
            ))
        }
    };
    let got = read_up_to(r, &mut pre[8..8 + len_bytes]).map_err(rd)?;
    if got < len_bytes {
        return Err(format_err(
            origin,
            format!(
                "truncated header: file has only {} bytes (no header length)",
                8 + got
            ),
        ));
    }
    let header_len = if len_bytes == 2 {
        usize::from(u16::from_le_bytes([pre[8], pre[9]]))
    } else {
        u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize
    };
    let prefix = 8 + len_bytes as u64;
    let remaining = total.saturating_sub(prefix);
    if header_len as u64 > remaining {
        return Err(format_err(
            origin,
            format!(
                "truncated header: header length is {header_len} bytes but the file has only \
                 {remaining} after the preamble"
            ),
        ));
    }
    if header_len > MAX_HEADER_LEN {
        return Err(format_err(
            origin,
            format!("header length {header_len} exceeds the {MAX_HEADER_LEN}-byte limit"),
        ));
    }
    let mut raw = vec![0u8; header_len];
    let got = read_up_to(r, &mut raw).map_err(rd)?;
    if got < header_len {
        return Err(format_err(
            origin,
            format!("truncated header: expected {header_len} header bytes, file has {got}"),
        ));
    }
    // Versions 1 and 2 are latin-1, version 3 is UTF-8.
    let text: String = if major == 3 {
        String::from_utf8(raw)
            .map_err(|e| format_err(origin, format!("header is not valid UTF-8: {e}")))?
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let (kind, fortran, shape) = parse_header_dict(&text).map_err(|e| format_err(origin, e))?;
    let count = element_count(&shape).ok_or_else(|| {
        format_err(
            origin,
            format!(
                "shape overflow: {} has too many elements",
                fmt_shape(&shape)
            ),
        )
    })?;
    let nbytes = (count as u64)
        .checked_mul(kind.size() as u64)
        .ok_or_else(|| {
            format_err(
                origin,
                format!(
                    "shape overflow: {} of {} is too many bytes",
                    fmt_shape(&shape),
                    kind.descr()
                ),
            )
        })?;
    Ok(Header {
        kind,
        fortran,
        shape,
        data_offset: prefix + header_len as u64,
        nbytes,
    })
}

fn read_body<R: Read + ?Sized>(
    r: &mut R,
    origin: &Path,
    header: &Header,
    trusted: bool,
) -> Result<NpyData> {
    // `nbytes` was checked against the source length; when that length is real it is safe to
    // allocate everything now, otherwise grow as bytes actually arrive.
    let count = (header.nbytes / header.kind.size() as u64) as usize;
    let mut data = header.kind.empty_data(if trusted {
        count
    } else {
        count.min(UNTRUSTED_RESERVE)
    });
    let mut buf = vec![0u8; CHUNK_BYTES.min(header.nbytes as usize)];
    let mut done: u64 = 0;
    while done < header.nbytes {
        let want = (header.nbytes - done).min(buf.len() as u64) as usize;
        let got = read_up_to(r, &mut buf[..want]).map_err(|e| read_error(origin, e))?;
        if got < want {
            return Err(format_err(
                origin,
                format!(
                    "truncated data: expected {} bytes of data, file has {}",
                    header.nbytes,
                    done + got as u64
                ),
            ));
        }
        let first = (done / header.kind.size() as u64) as usize;
        decode(header.kind, &buf[..want], &mut data, first).map_err(|e| format_err(origin, e))?;
        done += want as u64;
    }
    Ok(data)
}

/// Appends the little-endian elements in `bytes` (a whole number of them) to `out`.
fn decode(
    kind: Kind,
    bytes: &[u8],
    out: &mut NpyData,
    first: usize,
) -> std::result::Result<(), String> {
    fn le<const N: usize>(c: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    }
    match (kind, out) {
        (Kind::F4, NpyData::F32(v)) => {
            v.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(le(c))));
        }
        (Kind::F8, NpyData::F64(v)) => {
            v.extend(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(le(c))));
        }
        (Kind::I1, NpyData::I64(v)) => v.extend(bytes.iter().map(|&b| i64::from(b as i8))),
        (Kind::U1, NpyData::I64(v)) => v.extend(bytes.iter().map(|&b| i64::from(b))),
        (Kind::B1, NpyData::I64(v)) => v.extend(bytes.iter().map(|&b| i64::from(b != 0))),
        (Kind::I2, NpyData::I64(v)) => {
            v.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| i64::from(i16::from_le_bytes(le(c)))),
            );
        }
        (Kind::U2, NpyData::I64(v)) => {
            v.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| i64::from(u16::from_le_bytes(le(c)))),
            );
        }
        (Kind::I4, NpyData::I64(v)) => {
            v.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes(le(c)))),
            );
        }
        (Kind::U4, NpyData::I64(v)) => {
            v.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| i64::from(u32::from_le_bytes(le(c)))),
            );
        }
        (Kind::I8, NpyData::I64(v)) => {
            v.extend(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(le(c))));
        }
        (Kind::U8, NpyData::I64(v)) => {
            for (i, c) in bytes.chunks_exact(8).enumerate() {
                let x = u64::from_le_bytes(le(c));
                let y = i64::try_from(x).map_err(|_| {
                    format!(
                        "uint64 value {x} at element {} does not fit in int64",
                        first + i
                    )
                })?;
                v.push(y);
            }
        }
        (kind, out) => {
            return Err(format!(
                "internal error: {} buffer for {}",
                out.dtype_name(),
                kind.descr()
            ))
        }
    }
    Ok(())
}

/// Reorders Fortran-order (column-major) data of `shape` into C order.
fn fortran_to_c<T: Copy>(src: &[T], shape: &[usize]) -> Vec<T> {
    if let [r, c] = *shape {
        // The common case: a plain transpose, in blocks to stay cache friendly.
        const B: usize = 32;
        let mut out = Vec::with_capacity(src.len());
        for i0 in (0..r).step_by(B) {
            let i1 = (i0 + B).min(r);
            for i in i0..i1 {
                out.extend((0..c).map(|j| src[i + j * r]));
            }
        }
        return out;
    }
    // General case: walk C-order indices, keeping the Fortran offset in step.
    let nd = shape.len();
    let mut fstride = vec![1usize; nd];
    for k in 1..nd {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut idx = vec![0usize; nd];
    let mut off = 0usize;
    let mut out = Vec::with_capacity(src.len());
    for _ in 0..src.len() {
        out.push(src[off]);
        // Increment the C-order multi-index (last axis fastest).
        for k in (0..nd).rev() {
            idx[k] += 1;
            off += fstride[k];
            if idx[k] < shape[k] {
                break;
            }
            off -= fstride[k] * shape[k];
            idx[k] = 0;
        }
    }
    out
}

/// The element type a header's `'descr'` names, or why it is not supported.
pub(super) fn parse_descr(d: &str) -> std::result::Result<Kind, String> {
    let (order, code) = match d.as_bytes().first() {
        Some(&c @ (b'<' | b'>' | b'|' | b'=')) => (c, &d[1..]),
        _ => (b'?', d),
    };
    let one_byte = match code {
        "i1" | "b" => Some(Kind::I1),
        "u1" | "B" => Some(Kind::U1),
        "b1" | "?" => Some(Kind::B1),
        _ => None,
    };
    if let Some(k) = one_byte {
        // Byte order is meaningless for single bytes.
        return Ok(k);
    }
    let kind = match code {
        "f4" => Some(Kind::F4),
        "f8" => Some(Kind::F8),
        "i2" => Some(Kind::I2),
        "i4" => Some(Kind::I4),
        "i8" => Some(Kind::I8),
        "u2" => Some(Kind::U2),
        "u4" => Some(Kind::U4),
        "u8" => Some(Kind::U8),
        _ => None,
    };
    let shown = d.escape_default();
    if code.starts_with('O') {
        return Err(format!(
            "object arrays ('{shown}') are not supported: they hold pickled Python objects, not \
             numbers"
        ));
    }
    match (kind, order) {
        (Some(_), b'>') => Err(format!(
            "big-endian data ('{shown}') is not supported; convert with arr.astype('<{code}')"
        )),
        (Some(k), b'<') => Ok(k),
        (Some(_), _) => Err(format!(
            "dtype '{shown}' does not say its byte order; expected '<{code}'"
        )),
        (None, _) => Err(format!(
            "unsupported dtype '{shown}' (supported: {SUPPORTED})"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// The header (magic through the final `'\n'`) exactly as `np.save` writes it: the dict with
/// sorted keys, numpy's 21-digit growth padding, spaces up to a multiple of 64 bytes.
pub(crate) fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        // numpy >= 1.24 leaves room for the first axis to grow to 21 digits.
        dict.extend(std::iter::repeat_n(
            ' ',
            21usize.saturating_sub(first.to_string().len()),
        ));
    }
    let hlen = dict.len() + 1;
    // Version 1.0 unless the header does not fit its u16 length (never for shapes of sane rank).
    let pad1 = 64 - (10 + hlen) % 64;
    let (version, len_bytes) = if hlen + pad1 <= usize::from(u16::MAX) {
        (1u8, 2usize)
    } else {
        (2, 4)
    };
    let pad = 64 - (8 + len_bytes + hlen) % 64;
    let total_header = hlen + pad;
    let mut out = Vec::with_capacity(6 + 2 + len_bytes + total_header);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_bytes == 2 {
        out.extend_from_slice(&(total_header as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(total_header as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// Size in bytes of the encoded file.
pub(crate) fn encoded_len(arr: &NpyArrayRef<'_>) -> u64 {
    let item: u64 = match arr.data {
        NpyDataRef::F32(_) => 4,
        _ => 8,
    };
    npy_header(arr.data.descr(), &arr.shape).len() as u64 + item * arr.data.len() as u64
}

/// Streams the header and the little-endian elements to `w`.
pub(crate) fn write_npy_to<W: Write + ?Sized>(w: &mut W, arr: &NpyArrayRef<'_>) -> io::Result<()> {
    w.write_all(&npy_header(arr.data.descr(), &arr.shape))?;
    const N: usize = 8192;
    let mut buf = Vec::with_capacity(N * 8);
    macro_rules! stream {
        ($v:expr) => {
            for chunk in $v.chunks(N) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write_all(&buf)?;
            }
        };
    }
    match arr.data {
        NpyDataRef::F32(v) => stream!(v),
        NpyDataRef::F64(v) => stream!(v),
        NpyDataRef::I64(v) => stream!(v),
    }
    Ok(())
}

/// Encodes `data` (C order, `shape`'s element count) as the bytes of a `.npy` file.
pub fn encode_npy<T: NpyElement>(shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
    Ok(NpyArrayRef::new(shape, data)?.encode())
}

/// Writes `data` (C order) with `shape` to a `.npy` file, atomically (see [`write_atomic`]).
/// The bytes are those `np.save` writes: a version 1.0 header, data at a multiple of 64 bytes.
///
/// ```
/// use mmfuse::io::{read_npy, write_npy};
/// let path = std::env::temp_dir().join(format!("mmfuse-doc-write-{}.npy", std::process::id()));
/// write_npy(&path, &[3], &[7i64, 8, 9])?;
/// assert_eq!(read_npy(&path)?.into_vec_f64("labels")?, vec![7.0, 8.0, 9.0]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), mmfuse::Error>(())
/// ```
pub fn write_npy<T: NpyElement>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    write_npy_array(path, &NpyArrayRef::new(shape, data)?)
}

/// Writes a borrowed array to a `.npy` file, atomically.
pub fn write_npy_array(path: impl AsRef<Path>, array: &NpyArrayRef<'_>) -> Result<()> {
    write_atomic(path, |w| write_npy_to(w, array))
}

/// Writes a matrix to a `.npy` file as a 2-D array of its dtype, atomically.
pub fn write_matrix_npy<T: Real>(path: impl AsRef<Path>, m: &Matrix<T>) -> Result<()> {
    write_npy_array(path, &NpyArrayRef::from_matrix(m))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Checks that `len` elements fill `shape`.
fn check_shape(shape: &[usize], len: usize) -> Result<()> {
    let n = element_count(shape)
        .ok_or_else(|| Error::Shape(format!("shape {} overflows usize", fmt_shape(shape))))?;
    if n != len {
        return Err(Error::Shape(format!(
            "{len} elements cannot have shape {} ({n} elements)",
            fmt_shape(shape)
        )));
    }
    Ok(())
}

/// Product of the dimensions (1 for a 0-d shape), or `None` on overflow.
pub(crate) fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// A shape as Python prints it: `()`, `(5,)`, `(3, 4)`.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn escape_bytes(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// `origin` with `suffix` appended, for naming an entry inside an archive.
pub(crate) fn sub_origin(origin: &Path, entry: &str) -> PathBuf {
    PathBuf::from(format!(
        "{} (entry '{}')",
        origin.display(),
        entry.escape_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_nd_matches_definition() {
        let shape = [2usize, 3, 4];
        // Fortran data: element (i, j, k) at i + 2 j + 6 k, holding the value 100 i + 10 j + k.
        let mut f = vec![0i64; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    f[i + 2 * j + 6 * k] = (100 * i + 10 * j + k) as i64;
                }
            }
        }
        let c = fortran_to_c(&f, &shape);
        let mut n = 0;
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    assert_eq!(c[n], (100 * i + 10 * j + k) as i64);
                    n += 1;
                }
            }
        }
    }

    #[test]
    fn header_matches_numpy_bytes() {
        // What np.save(f, np.zeros((3, 4))) writes (numpy >= 1.24).
        let h = npy_header("<f8", &[3, 4]);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert_eq!(h.len(), 128);
        assert!(text.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }"));
        assert!(text.ends_with(" \n"));
        assert_eq!(&h[..10], b"\x93NUMPY\x01\x00\x76\x00");
    }

    #[test]
    fn descr_messages() {
        assert!(parse_descr(">f8").unwrap_err().contains("big-endian"));
        assert!(parse_descr("|O").unwrap_err().contains("object"));
        assert!(parse_descr("<U10")
            .unwrap_err()
            .contains("unsupported dtype '<U10'"));
        assert_eq!(parse_descr(">i1").unwrap(), Kind::I1);
    }
}
