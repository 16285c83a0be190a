//! Integration tests of `mmfuse::io`: .npy, .npz, CSV, atomic writes, format dispatch.
//! Every fixture is built by hand here; numpy is not needed.

use std::io::Write;
use std::path::{Path, PathBuf};

use mmfuse::io::{
    encode_npy, encode_npz, parse_csv, parse_npy, parse_npz, parse_npz_with_limit, read_csv,
    read_matrix, read_matrix_dyn, read_npy, read_npz, write_atomic, write_atomic_bytes,
    write_matrix_npy, write_npy, write_npz, CsvOptions, Delimiter, DynMatrix, HeaderMode, NpyArray,
    NpyArrayRef, NpyData,
};
use mmfuse::{Error, Matrix};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn origin() -> &'static Path {
    Path::new("test.npy")
}

/// A .npy file built by hand: `header` is the dict text, padded the numpy way.
fn npy_v(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let len_bytes = if major == 1 { 2 } else { 4 };
    let mut h = header.as_bytes().to_vec();
    let unpadded = 8 + len_bytes + h.len() + 1;
    h.extend(std::iter::repeat_n(b' ', (64 - unpadded % 64) % 64));
    h.push(b'\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    npy_v(1, header, data)
}

fn f8_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Offset of the data: the 10-byte preamble plus the header length field.
fn data_offset(bytes: &[u8]) -> usize {
    10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize
}

#[track_caller]
fn format_reason(r: mmfuse::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::Format { reason, .. }) => reason,
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

#[track_caller]
fn assert_rejects(bytes: &[u8], words: &[&str]) {
    let reason = format_reason(parse_npy(bytes, origin()));
    for w in words {
        assert!(reason.contains(w), "message {reason:?} lacks {w:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// .npy round trips and layout
// ---------------------------------------------------------------------------------------------

const SHAPES: &[&[usize]] = &[
    &[1, 1],
    &[2, 3],
    &[5],
    &[],
    &[0, 3],
    &[3, 0],
    &[2, 3, 4],
    &[0],
];

fn iota(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64 * 0.5 - 3.25).collect()
}

#[test]
fn npy_round_trip_all_dtypes_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    for (k, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let f64s = iota(n);
        let f32s: Vec<f32> = f64s.iter().map(|&x| x as f32).collect();
        let i64s: Vec<i64> = (0..n as i64).map(|i| i * 1_000_000_007 - 5).collect();

        let p = dir.path().join(format!("a{k}.npy"));
        write_npy(&p, shape, &f64s).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, shape.to_vec());
        assert_eq!(a.data, NpyData::F64(f64s.clone()));
        assert_eq!(a.dtype_name(), "float64");

        write_npy(&p, shape, &f32s).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(
            (a.shape.clone(), a.data),
            (shape.to_vec(), NpyData::F32(f32s))
        );

        write_npy(&p, shape, &i64s).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(
            (a.shape.clone(), a.data),
            (shape.to_vec(), NpyData::I64(i64s))
        );
    }
}

#[test]
fn header_is_aligned_like_numpy() {
    let shapes: Vec<Vec<usize>> = vec![
        vec![],
        vec![0],
        vec![1],
        vec![7, 3],
        vec![123_456_789, 0],
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0],
        vec![usize::MAX, 0],
    ];
    for shape in &shapes {
        for bytes in [
            encode_npy::<f64>(shape, &[]),
            encode_npy::<f32>(shape, &[]),
            encode_npy::<i64>(shape, &[]),
        ] {
            let bytes = match bytes {
                Ok(b) => b,
                // Shapes with elements need data; only the empty ones are encoded here.
                Err(_) => continue,
            };
            let off = data_offset(&bytes);
            assert_eq!(off % 64, 0, "shape {shape:?}");
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
            assert_eq!(bytes[off - 1], b'\n');
            assert_eq!(bytes.len(), off);
            let header = std::str::from_utf8(&bytes[10..off]).unwrap();
            assert!(header.starts_with("{'descr': '<"), "{header}");
            assert!(header.contains("'fortran_order': False"));
        }
    }
    // Non-empty too, with the exact text numpy writes.
    let b = encode_npy(&[2, 2], &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let off = data_offset(&b);
    assert_eq!(off, 128);
    assert!(std::str::from_utf8(&b[10..off])
        .unwrap()
        .starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"));
    assert_eq!(b.len(), 128 + 16);
    let b = encode_npy(&[3], &[1i64, 2, 3]).unwrap();
    assert!(std::str::from_utf8(&b[10..data_offset(&b)])
        .unwrap()
        .contains("'shape': (3,), }"));
}

#[test]
fn write_matrix_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.npy");
    let m = Matrix::from_vec(2, 3, vec![1.5f32, -2.0, 3.25, 4.0, 5.0, 6.0]).unwrap();
    write_matrix_npy(&p, &m).unwrap();
    let back = read_npy(&p).unwrap();
    assert_eq!(back.dtype_name(), "float32");
    assert_eq!(back.clone().into_matrix::<f32>("m").unwrap(), m);
    let wide = back.into_matrix::<f64>("m").unwrap();
    assert_eq!(wide.row(0), &[1.5, -2.0, 3.25]);
    assert_eq!(NpyArray::from_matrix(&m).shape, vec![2, 3]);
}

#[test]
fn fortran_order_is_transposed_on_read() {
    // The 2 x 3 matrix [[1, 2, 3], [4, 5, 6]] stored column by column.
    let bytes = npy(
        "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
        &f8_bytes(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
    );
    let a = parse_npy(&bytes, origin()).unwrap();
    assert_eq!(a.shape, vec![2, 3]);
    assert_eq!(a.data, NpyData::F64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));

    // 3-D, int32: element (i, j, k) = 100 i + 10 j + k at Fortran offset i + 2 j + 6 k.
    let mut f = [0i32; 24];
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..4 {
                f[i + 2 * j + 6 * k] = (100 * i + 10 * j + k) as i32;
            }
        }
    }
    let data: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
    let bytes = npy(
        "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }",
        &data,
    );
    let a = parse_npy(&bytes, origin()).unwrap();
    let expect: Vec<i64> = (0..2)
        .flat_map(|i| (0..3).flat_map(move |j| (0..4).map(move |k| 100 * i + 10 * j + k)))
        .collect();
    assert_eq!(a.data, NpyData::I64(expect));

    // 1-D Fortran is the same as C.
    let bytes = npy(
        "{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }",
        &f8_bytes(&[1.0, 2.0]),
    );
    assert_eq!(
        parse_npy(&bytes, origin()).unwrap().data,
        NpyData::F64(vec![1.0, 2.0])
    );
}

#[test]
fn versions_two_and_three() {
    for major in [2u8, 3] {
        let bytes = npy_v(
            major,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &f8_bytes(&[1.0, 2.0]),
        );
        let a = parse_npy(&bytes, origin()).unwrap();
        assert_eq!(a.data, NpyData::F64(vec![1.0, 2.0]));
    }
}

#[test]
fn tolerant_header_parsing() {
    let data = f8_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    for header in [
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}",
        "{ 'descr' : '<f8' , 'fortran_order' : False , 'shape' : ( 2 , 3 ) , }",
        "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2, 3)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 3L), }",
        "{'descr': '<f8', 'fortran_order': False, 'shape': [2, 3], 'extra': None, }",
        "{'descr':'<f8','fortran_order':False,'shape':(2,3,),}",
    ] {
        let a =
            parse_npy(&npy(header, &data), origin()).unwrap_or_else(|e| panic!("{header}: {e}"));
        assert_eq!(a.shape, vec![2, 3], "{header}");
    }
    // A 0-d array holds one element.
    let a = parse_npy(
        &npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            &f8_bytes(&[7.0]),
        ),
        origin(),
    )
    .unwrap();
    assert_eq!((a.shape.len(), a.len()), (0, 1));
}

#[test]
fn integer_and_bool_dtypes_widen_to_i64() {
    let cases: Vec<(&str, Vec<u8>, Vec<i64>)> = vec![
        ("|i1", vec![0xff, 0x7f], vec![-1, 127]),
        ("<i1", vec![0x80], vec![-128]),
        ("|u1", vec![0xff, 0x01], vec![255, 1]),
        ("<i2", (-300i16).to_le_bytes().to_vec(), vec![-300]),
        ("<u2", 65535u16.to_le_bytes().to_vec(), vec![65535]),
        ("<i4", (-70000i32).to_le_bytes().to_vec(), vec![-70000]),
        (
            "<u4",
            u32::MAX.to_le_bytes().to_vec(),
            vec![u32::MAX as i64],
        ),
        ("<i8", i64::MIN.to_le_bytes().to_vec(), vec![i64::MIN]),
        (
            "<u8",
            (i64::MAX as u64).to_le_bytes().to_vec(),
            vec![i64::MAX],
        ),
        ("|b1", vec![0, 1, 2], vec![0, 1, 1]),
    ];
    for (descr, data, expect) in cases {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
            expect.len()
        );
        let a =
            parse_npy(&npy(&header, &data), origin()).unwrap_or_else(|e| panic!("{descr}: {e}"));
        assert_eq!(a.data, NpyData::I64(expect), "{descr}");
        assert_eq!(a.dtype_name(), "int64");
    }
    let f4 = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
        &1.5f32.to_le_bytes(),
    );
    assert_eq!(
        parse_npy(&f4, origin()).unwrap().data,
        NpyData::F32(vec![1.5])
    );
}

// ---------------------------------------------------------------------------------------------
// .npy rejections
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_wrong_magic_and_versions() {
    assert_rejects(b"hello world, not numpy", &["wrong magic"]);
    assert_rejects(b"PK\x03\x04rest", &["wrong magic", "npz"]);
    assert_rejects(b"", &["truncated"]);
    assert_rejects(b"\x93NUM", &["truncated"]);
    assert_rejects(b"\x93NUMPY\x01", &["truncated"]);
    assert_rejects(b"\x93NUMPY\x01\x00\x10", &["truncated"]);
    let mut v4 = encode_npy(&[1], &[1.0f64]).unwrap();
    v4[6] = 4;
    assert_rejects(&v4, &["unknown", "version 4.0"]);
    v4[6] = 1;
    v4[7] = 1;
    assert_rejects(&v4, &["version 1.1"]);
}

#[test]
fn rejects_truncated_header_and_data() {
    let good = encode_npy(&[2, 3], &[0.0f64; 6]).unwrap();
    assert_rejects(&good[..50], &["truncated header"]);
    assert_rejects(
        &good[..good.len() - 8],
        &["truncated data", "expected 48 bytes of data, file has 40"],
    );
    assert_rejects(&good[..128], &["expected 48 bytes of data, file has 0"]);
    // A header length field pointing past the end of the file.
    let mut lying = good[..20].to_vec();
    lying[8] = 0xff;
    lying[9] = 0xff;
    assert_rejects(&lying, &["truncated header"]);
    // A huge shape: rejected by length, before anything is allocated.
    let huge = npy(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
        &[],
    );
    assert_rejects(&huge, &["shape overflow"]);
    let big = npy(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4000000000, 4), }",
        &[0; 16],
    );
    assert_rejects(&big, &["expected 128000000000 bytes of data, file has 16"]);
}

#[test]
fn rejects_trailing_bytes() {
    let mut b = encode_npy(&[2], &[1.0f64, 2.0]).unwrap();
    b.extend_from_slice(&[0; 8]);
    assert_rejects(&b, &["8 unexpected bytes after"]);
}

#[test]
fn rejects_unsupported_dtypes_with_names() {
    let h = |d: &str| {
        npy(
            &format!("{{'descr': '{d}', 'fortran_order': False, 'shape': (1,), }}"),
            &[0; 8],
        )
    };
    assert_rejects(&h(">f8"), &["big-endian", "astype('<f8')"]);
    assert_rejects(&h(">i4"), &["big-endian"]);
    assert_rejects(&h("|O"), &["object"]);
    assert_rejects(&h("<U10"), &["unsupported dtype '<U10'"]);
    assert_rejects(&h("<f2"), &["unsupported dtype '<f2'"]);
    assert_rejects(&h("<c16"), &["unsupported dtype '<c16'"]);
    assert_rejects(&h("|S5"), &["unsupported dtype '|S5'"]);
    assert_rejects(&h("f8"), &["byte order"]);
    let structured = npy(
        "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,), }",
        &[0; 8],
    );
    assert_rejects(&structured, &["structured"]);
    let big = npy(
        "{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }",
        &u64::MAX.to_le_bytes(),
    );
    assert_rejects(&big, &["does not fit in int64"]);
}

#[test]
fn rejects_malformed_headers() {
    for (header, word) in [
        ("{'descr': '<f8', 'fortran_order': False}", "no 'shape'"),
        ("{'fortran_order': False, 'shape': (1,)}", "no 'descr'"),
        ("{'descr': '<f8', 'shape': (1,)}", "no 'fortran_order'"),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
            "negative",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1.5,)}",
            "malformed",
        ),
        (
            "{'descr': '<f8', 'fortran_order': 'no', 'shape': (1,)}",
            "fortran_order",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)",
            "malformed",
        ),
        ("['descr', '<f8']", "not a dict"),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} junk",
            "after the dict",
        ),
        ("{'descr: '<f8'}", "malformed"),
        (
            "((((((((((((((((((((((((((((((((((((((((((((((((((((",
            "nests too deeply",
        ),
    ] {
        assert_rejects(&npy(header, &[0; 8]), &[word]);
    }
}

#[test]
fn read_npy_reports_missing_file_as_io() {
    let dir = tempfile::tempdir().unwrap();
    match read_npy(dir.path().join("nope.npy")) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("nope.npy")),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

#[test]
fn into_matrix_and_vec_conversions() {
    let v = NpyArray::new(vec![3], NpyData::I64(vec![1, 2, 3])).unwrap();
    match v.clone().into_matrix::<f64>("features") {
        Err(Error::Shape(msg)) => {
            assert!(msg.contains("features") && msg.contains("(3,)"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(v.into_vec_f64("labels").unwrap(), vec![1.0, 2.0, 3.0]);

    let ints = NpyArray::new(vec![2, 2], NpyData::I64(vec![1, -2, 3, 4])).unwrap();
    let m = ints.into_matrix::<f32>("x").unwrap();
    assert_eq!(m.as_slice(), &[1.0, -2.0, 3.0, 4.0]);

    let third = NpyArray::new(vec![1, 1], NpyData::F64(vec![1.0 / 3.0])).unwrap();
    assert_eq!(
        third.into_matrix::<f32>("x").unwrap().get(0, 0),
        1.0f32 / 3.0
    );

    let col = NpyArray::new(vec![3, 1], NpyData::F32(vec![1.0, 2.0, 3.0])).unwrap();
    assert_eq!(col.into_vec_f64("y").unwrap(), vec![1.0, 2.0, 3.0]);
    let row = NpyArray::new(vec![1, 2], NpyData::F64(vec![1.0, 2.0])).unwrap();
    assert_eq!(row.into_vec_f64("y").unwrap(), vec![1.0, 2.0]);
    let square = NpyArray::new(vec![2, 2], NpyData::F64(vec![0.0; 4])).unwrap();
    assert!(matches!(square.into_vec_f64("y"), Err(Error::Shape(m)) if m.contains("y")));

    let empty = NpyArray::new(vec![0, 3], NpyData::F64(vec![])).unwrap();
    assert_eq!(empty.into_matrix::<f64>("x").unwrap().shape(), (0, 3));

    assert!(matches!(
        NpyArray::new(vec![2, 2], NpyData::F64(vec![0.0; 3])),
        Err(Error::Shape(_))
    ));
    // A hand-built inconsistent array is caught by the conversions.
    let bad = NpyArray {
        shape: vec![2, 2],
        data: NpyData::F64(vec![0.0; 3]),
    };
    assert!(matches!(
        bad.clone().into_matrix::<f64>("x"),
        Err(Error::Shape(_))
    ));
    assert!(bad.view().is_err());
}

// ---------------------------------------------------------------------------------------------
// .npz
// ---------------------------------------------------------------------------------------------

#[test]
fn npz_round_trip_stored() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npz");
    let x = Matrix::from_vec(2, 2, vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
    let labels = vec![1i64, -1];
    let w = [0.5f32; 3];
    write_npz(
        &p,
        &[
            ("x", NpyArrayRef::from_matrix(&x)),
            ("y", NpyArrayRef::new(&[2], &labels).unwrap()),
            ("w", NpyArrayRef::new(&[3], &w).unwrap()),
        ],
    )
    .unwrap();
    let arrays = read_npz(&p).unwrap();
    let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x", "y", "w"]);
    assert_eq!(arrays[0].1.clone().into_matrix::<f64>("x").unwrap(), x);
    assert_eq!(arrays[1].1.data, NpyData::I64(labels));
    assert_eq!(arrays[2].1.data, NpyData::F32(w.to_vec()));

    // Entries are plain stored .npy files, as np.savez writes them.
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&p).unwrap()).unwrap();
    let e = zip.by_index(0).unwrap();
    assert_eq!(e.name(), "x.npy");
    assert_eq!(e.compression(), zip::CompressionMethod::Stored);

    assert!(write_npz(
        &p,
        &[
            ("a", NpyArrayRef::new(&[1], &[1.0f64]).unwrap()),
            ("a", NpyArrayRef::new(&[1], &[1.0f64]).unwrap())
        ]
    )
    .is_err());
    assert!(encode_npz(&[("a/b", NpyArrayRef::new(&[1], &[1.0f64]).unwrap())]).is_err());
}

/// An archive built with the zip crate, as np.savez_compressed would (deflated entries).
fn zip_with(entries: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        zw.start_file(*name, opts).unwrap();
        zw.write_all(bytes).unwrap();
    }
    zw.finish().unwrap().into_inner()
}

#[test]
fn npz_deflated_entries() {
    let a = encode_npy(&[2, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let b = encode_npy(&[4], &[0i64; 4]).unwrap();
    let bytes = zip_with(
        &[("features.npy", a), ("labels.npy", b)],
        zip::CompressionMethod::Deflated,
    );
    let arrays = parse_npz(&bytes, Path::new("c.npz")).unwrap();
    assert_eq!(arrays[0].0, "features");
    assert_eq!(arrays[0].1.shape, vec![2, 3]);
    assert_eq!(arrays[1].0, "labels");
    assert_eq!(arrays[1].1.data, NpyData::I64(vec![0; 4]));
}

#[test]
fn npz_bounds_decompressed_size() {
    // 8 MB of zeros deflates to a few kB: refused under a 1 MB budget.
    let zeros = vec![0.0f64; 1 << 20];
    let bomb = zip_with(
        &[("z.npy", encode_npy(&[1 << 20], &zeros).unwrap())],
        zip::CompressionMethod::Deflated,
    );
    assert!(bomb.len() < 100_000);
    match parse_npz_with_limit(&bomb, Path::new("bomb.npz"), 1 << 20) {
        Err(Error::TooLarge { limit, .. }) => assert_eq!(limit, 1 << 20),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_npz(&bomb, Path::new("bomb.npz")).unwrap()[0].1.len(),
        1 << 20
    );
}

#[test]
fn npz_rejects_corrupt_archives() {
    let good = encode_npz(&[(
        "x",
        NpyArrayRef::new(&[4], &[1.0f64, 2.0, 3.0, 4.0]).unwrap(),
    )])
    .unwrap();
    assert_eq!(parse_npz(&good, Path::new("g.npz")).unwrap().len(), 1);

    let reason = format_reason(parse_npz(b"definitely not a zip", Path::new("bad.npz")));
    assert!(reason.contains("zip"), "{reason}");
    let npy_bytes = encode_npy(&[1], &[1.0f64]).unwrap();
    let reason = format_reason(parse_npz(&npy_bytes, Path::new("bad.npz")));
    assert!(reason.contains(".npy file"), "{reason}");

    // Flip a byte of the last element's data: the CRC check catches it.
    let mut corrupt = good.clone();
    let pos = corrupt
        .windows(8)
        .position(|w| w == 4.0f64.to_le_bytes())
        .unwrap();
    corrupt[pos] ^= 1;
    assert!(parse_npz(&corrupt, Path::new("c.npz")).is_err());

    // Truncated archive.
    assert!(parse_npz(&good[..good.len() / 2], Path::new("t.npz")).is_err());

    // An entry that is not a .npy file names the entry.
    let junk = zip_with(
        &[("x.npy", b"garbage".to_vec())],
        zip::CompressionMethod::Stored,
    );
    match parse_npz(&junk, Path::new("j.npz")) {
        Err(Error::Format { path, reason }) => {
            assert!(path.to_string_lossy().contains("x.npy"));
            assert!(reason.contains("wrong magic"));
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------

fn csv<T: mmfuse::Real>(text: &str) -> mmfuse::Result<Matrix<T>> {
    parse_csv(text, &CsvOptions::default(), Path::new("t.csv"))
}

#[test]
fn csv_with_and_without_header() {
    let m = csv::<f64>("1,2,3\n4,5,6\n").unwrap();
    assert_eq!(
        (m.shape(), m.as_slice()),
        ((2, 3), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0][..])
    );
    let m = csv::<f64>("a,b\n1,2\n\n  \n3,4\n").unwrap();
    assert_eq!(
        (m.shape(), m.as_slice()),
        ((2, 2), &[1.0, 2.0, 3.0, 4.0][..])
    );
    let m = csv::<f64>(
        "\u{feff}# written by np.savetxt\r\n\"x\",\"y\"\r\n 1.5 , -2e3 \r\n\"3\",nan\r\n",
    )
    .unwrap();
    assert_eq!(m.shape(), (2, 2));
    assert_eq!(m.row(0), &[1.5, -2000.0]);
    assert!(m.get(1, 1).is_nan());
    // pandas writes an empty first header field for the index.
    let m = csv::<f32>(",a,b\n0,1,2\n").unwrap();
    assert_eq!(m.as_slice(), &[0.0, 1.0, 2.0]);
    // Explicit modes.
    let opts = CsvOptions {
        header: HeaderMode::Present,
        ..CsvOptions::default()
    };
    let m: Matrix<f64> = parse_csv("1,2\n3,4\n", &opts, Path::new("t.csv")).unwrap();
    assert_eq!(m.shape(), (1, 2));
    let opts = CsvOptions {
        header: HeaderMode::Absent,
        ..CsvOptions::default()
    };
    assert!(parse_csv::<f64>("a,b\n3,4\n", &opts, Path::new("t.csv")).is_err());
    // Other delimiters.
    let ws = CsvOptions::with_delimiter(Delimiter::Whitespace);
    let m: Matrix<f64> = parse_csv("1 2\t 3\n4 5 6\n", &ws, Path::new("t.txt")).unwrap();
    assert_eq!(m.shape(), (2, 3));
    let semi = CsvOptions::with_delimiter(Delimiter::Char(';'));
    let m: Matrix<f64> = parse_csv("1;2\n", &semi, Path::new("t.csv")).unwrap();
    assert_eq!(m.as_slice(), &[1.0, 2.0]);
    // f32 parses in f32 precision.
    assert_eq!(csv::<f32>("0.1\n").unwrap().get(0, 0), 0.1f32);
}

#[test]
fn csv_errors_name_lines_and_columns() {
    let reason = format_reason(csv::<f64>("a,b,c\n1,2,3\n\n4,5\n"));
    assert!(
        reason.contains("line 4") && reason.contains("2 fields") && reason.contains("expected 3"),
        "{reason}"
    );
    let reason = format_reason(csv::<f64>("1,2,3\n4,x5,6\n"));
    assert!(
        reason.contains("line 2, column 2") && reason.contains("x5"),
        "{reason}"
    );
    let reason = format_reason(csv::<f64>("1,2,3\n4,,6\n"));
    assert!(
        reason.contains("line 2, column 2") && reason.contains("empty"),
        "{reason}"
    );
    // An empty field in the first row is an error too, not a header.
    let reason = format_reason(csv::<f64>("1,,3\n"));
    assert!(reason.contains("line 1, column 2"), "{reason}");
    assert!(matches!(csv::<f64>("a,b\n\n"), Err(Error::Empty(_))));
    assert!(matches!(csv::<f64>(""), Err(Error::Empty(_))));
}

#[test]
fn read_csv_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    std::fs::write(&p, "f1,f2\n1,2\n3,4\n").unwrap();
    let m: Matrix<f64> = read_csv(&p, &CsvOptions::default()).unwrap();
    assert_eq!(m.shape(), (2, 2));
    std::fs::write(&p, b"1,2\n\xff\n").unwrap();
    assert!(format_reason(read_csv::<f64>(&p, &CsvOptions::default())).contains("UTF-8"));
}

// ---------------------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------------------

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn atomic_write_success_and_failure() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.json");
    write_atomic_bytes(&target, b"old").unwrap();
    assert_eq!(dir_entries(dir.path()), ["out.json"]);

    // A failing closure: target untouched, temp file gone.
    let r = write_atomic(&target, |w| {
        w.write_all(b"partial new content")?;
        Err(std::io::Error::other("boom"))
    });
    match r {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, target);
            assert!(source.to_string().contains("boom"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    assert_eq!(dir_entries(dir.path()), ["out.json"]);

    // A panicking closure: the same.
    let t = target.clone();
    let caught = std::panic::catch_unwind(move || {
        let _ = write_atomic(&t, |w| {
            w.write_all(b"half")?;
            panic!("closure panicked");
        });
    });
    assert!(caught.is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    assert_eq!(dir_entries(dir.path()), ["out.json"]);

    // Success replaces the content.
    write_atomic(&target, |w| w.write_all(b"new")).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    assert_eq!(dir_entries(dir.path()), ["out.json"]);

    // A writer that fails validation never touches the target either.
    assert!(write_npy(&target, &[3], &[1.0f64]).is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"new");

    // Missing directory: an Io error on the target.
    let missing: PathBuf = dir.path().join("no/such/dir/x.npy");
    assert!(matches!(
        write_npy(&missing, &[1], &[1.0f64]),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        write_atomic_bytes(dir.path().join(".."), b""),
        Err(Error::Io { .. })
    ));
}

#[cfg(unix)]
#[test]
fn atomic_write_keeps_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.npy");
    write_npy(&target, &[1], &[1.0f64]).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    write_npy(&target, &[1], &[2.0f64]).unwrap();
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

// ---------------------------------------------------------------------------------------------
// Format dispatch
// ---------------------------------------------------------------------------------------------

#[test]
fn read_matrix_by_extension_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m32 = Matrix::from_vec(2, 2, vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();

    write_matrix_npy(d.join("a.npy"), &m32).unwrap();
    assert_eq!(read_matrix::<f32>(d.join("a.npy")).unwrap(), m32);
    assert!(matches!(read_matrix_dyn(d.join("a.npy")).unwrap(), DynMatrix::F32(m) if m == m32));

    write_npy(d.join("i.npy"), &[1, 2], &[5i64, 6]).unwrap();
    let dm = read_matrix_dyn(d.join("i.npy")).unwrap();
    assert_eq!((dm.dtype_name(), dm.shape()), ("float64", (1, 2)));
    assert_eq!(dm.into_real::<f32>().as_slice(), &[5.0, 6.0]);

    std::fs::write(d.join("c.csv"), "a,b\n1,2\n3,4\n").unwrap();
    assert_eq!(read_matrix::<f32>(d.join("c.csv")).unwrap(), m32);
    assert!(matches!(
        read_matrix_dyn(d.join("c.csv")).unwrap(),
        DynMatrix::F64(_)
    ));
    std::fs::write(d.join("c.tsv"), "1\t2\n3\t4\n").unwrap();
    assert_eq!(read_matrix::<f32>(d.join("c.tsv")).unwrap(), m32);
    std::fs::write(d.join("c.txt"), "# header\n1 2\n3 4\n").unwrap();
    assert_eq!(read_matrix::<f32>(d.join("c.txt")).unwrap(), m32);

    // No extension: sniffed.
    std::fs::copy(d.join("a.npy"), d.join("noext")).unwrap();
    assert_eq!(read_matrix::<f32>(d.join("noext")).unwrap(), m32);
    std::fs::write(d.join("text"), "1,2\n3,4\n").unwrap();
    assert_eq!(read_matrix::<f32>(d.join("text")).unwrap(), m32);
    std::fs::write(d.join("bin.dat"), [0u8, 159, 146, 150, 255]).unwrap();
    assert!(format_reason(read_matrix::<f32>(d.join("bin.dat"))).contains("unknown file format"));

    // .npz: exactly one array.
    write_npz(d.join("one.npz"), &[("x", NpyArrayRef::from_matrix(&m32))]).unwrap();
    assert_eq!(read_matrix::<f32>(d.join("one.npz")).unwrap(), m32);
    write_npz(
        d.join("two.npz"),
        &[
            ("x", NpyArrayRef::from_matrix(&m32)),
            ("y", NpyArrayRef::from_matrix(&m32)),
        ],
    )
    .unwrap();
    let reason = format_reason(read_matrix::<f32>(d.join("two.npz")));
    assert!(
        reason.contains("exactly one") && reason.contains("'x', 'y'"),
        "{reason}"
    );

    // A 1-D array is not a matrix.
    write_npy(d.join("v.npy"), &[3], &[1.0f64, 2.0, 3.0]).unwrap();
    assert!(
        matches!(read_matrix::<f64>(d.join("v.npy")), Err(Error::Shape(m)) if m.contains("v.npy"))
    );
}

// ---------------------------------------------------------------------------------------------
// Corruption sweeps: no panic on any truncation or single-byte change of valid files
// ---------------------------------------------------------------------------------------------

#[test]
fn every_truncation_and_byte_flip_is_handled() {
    let npy_bytes = encode_npy(&[2, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let fortran = npy(
        "{'descr': '<i2', 'fortran_order': True, 'shape': (2, 2), }",
        &[1, 0, 2, 0, 3, 0, 4, 0],
    );
    for base in [&npy_bytes, &fortran] {
        for cut in 0..base.len() {
            assert!(parse_npy(&base[..cut], origin()).is_err());
        }
        for pos in 0..base.len() {
            for v in [0u8, 1, b' ', b'(', b')', b',', b'\'', b'9', 0x7f, 0xff] {
                let mut b = base.clone();
                b[pos] = v;
                let _ = parse_npy(&b, origin());
            }
        }
    }
    let deflated = zip_with(
        &[("a.npy", npy_bytes.clone())],
        zip::CompressionMethod::Deflated,
    );
    let stored = encode_npz(&[("a", NpyArrayRef::new(&[6], &[0.5f32; 6]).unwrap())]).unwrap();
    for base in [&deflated, &stored] {
        for cut in 0..base.len() {
            let _ = parse_npz(&base[..cut], Path::new("t.npz"));
        }
        for pos in 0..base.len() {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = base.clone();
                b[pos] = v;
                let _ = parse_npz_with_limit(&b, Path::new("t.npz"), 1 << 20);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn shape_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..6, 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_npy_round_trip(shape in shape_strategy(), seed in any::<u64>(), kind in 0u8..3) {
        let n: usize = shape.iter().product();
        let mut s = seed | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let bytes = match kind {
            0 => {
                let v: Vec<f64> = (0..n).map(|_| f64::from_bits(next())).collect();
                encode_npy(&shape, &v)
            }
            1 => {
                let v: Vec<f32> = (0..n).map(|_| f32::from_bits(next() as u32)).collect();
                encode_npy(&shape, &v)
            }
            _ => {
                let v: Vec<i64> = (0..n).map(|_| next() as i64).collect();
                encode_npy(&shape, &v)
            }
        }
        .unwrap();
        prop_assert_eq!(data_offset(&bytes) % 64, 0);
        let a = parse_npy(&bytes, origin()).unwrap();
        prop_assert_eq!(&a.shape, &shape);
        // Compare bit patterns (NaNs included) by re-encoding.
        let again = a.view().unwrap().encode();
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn prop_parse_npy_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_npy(&bytes, origin());
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse_npy(&with_magic, origin());
    }

    #[test]
    fn prop_npz_round_trip(rows in 0usize..5, cols in 0usize..5, v in -1e6f64..1e6) {
        let data: Vec<f64> = (0..rows * cols).map(|i| v + i as f64).collect();
        let bytes = encode_npz(&[("a", NpyArrayRef::new(&[rows, cols], &data).unwrap())]).unwrap();
        let back = parse_npz(&bytes, Path::new("p.npz")).unwrap();
        prop_assert_eq!(back.len(), 1);
        prop_assert_eq!(&back[0].1.data, &NpyData::F64(data));
    }
}
