//! The container file (`docs/FORMATS.md` §9): round trips of every format, loading without a
//! copy, and every corruption or truncation an error.

use bitnet_kernels::container::{self, Container};
use bitnet_kernels::{gemv_i8, Error, Format, Scales, TernaryMatrix};

fn trits(n: usize, seed: usize) -> Vec<i8> {
    (0..n)
        .map(|i| ((i * 7 + seed * 13) % 5 % 3) as i8 - 1)
        .collect()
}

/// Three matrices, one per format, ragged shapes, and one with per-row scales.
fn sample() -> Vec<(String, TernaryMatrix)> {
    let mut v: Vec<(String, TernaryMatrix)> = [
        (7, 300, Format::I2S),
        (65, 129, Format::TL1),
        (33, 97, Format::TL2),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (r, c, f))| {
        let m = TernaryMatrix::from_ternary(&trits(r * c, i), r, c, 0.25 + i as f32, f);
        (format!("blk.{i}.{f}"), m.unwrap())
    })
    .collect();
    let pr = TernaryMatrix::from_ternary(&trits(5 * 300, 9), 5, 300, 1.0, Format::TL2)
        .unwrap()
        .with_row_scales(vec![0.5, 1.5, 2.0, 0.125, 3.0])
        .unwrap();
    v.push(("per_row".into(), pr));
    v
}

fn saved(ms: &[(String, TernaryMatrix)]) -> Vec<u8> {
    let mut out = Vec::new();
    container::save(&mut out, ms.iter().map(|(n, m)| (n.as_str(), m))).unwrap();
    out
}

#[test]
fn round_trip_every_format_and_no_copy() {
    let ms = sample();
    let file = saved(&ms);
    let buf = bitnet_kernels::format::shared_copy(&file).unwrap();
    let base = (*buf).as_ref().as_ptr() as usize;
    let c = Container::from_buffer(buf).unwrap();
    assert_eq!(c.len(), ms.len());
    let names: Vec<_> = c.names().collect();
    assert_eq!(
        names,
        ms.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>()
    );
    for ((name, m), (n2, l)) in ms.iter().zip(c.iter()) {
        assert_eq!(name, n2);
        assert_eq!(l, m);
        assert!(l.is_shared());
        // No copy: the loaded matrix's bytes lie inside the buffer, 64-byte aligned.
        let p = l.packed_bytes().as_ptr() as usize;
        assert!(p >= base && p + l.packed_bytes().len() <= base + file.len());
        assert_eq!((p - base) % 64, 0);
        assert_eq!(
            &file[p - base..][..l.packed_bytes().len()],
            m.packed_bytes()
        );
        // And the kernels run on the borrowed bytes exactly as on the owned ones.
        let x: Vec<i8> = (0..m.cols()).map(|i| (i % 255) as i8).collect();
        let (mut y1, mut y2) = (vec![0; m.rows()], vec![0; m.rows()]);
        gemv_i8(m, &x, &mut y1).unwrap();
        gemv_i8(l, &x, &mut y2).unwrap();
        assert_eq!(y1, y2, "{name}");
    }
    assert_eq!(c.get("blk.1.TL1"), Some(&ms[1].1));
    assert!(c.get("nope").is_none());
    // The matrices outlive the container (they hold the buffer).
    let kept = c.into_matrices();
    assert_eq!(kept[2].1, ms[2].1);
}

#[test]
fn empty_container_and_files_on_disk() {
    let c = Container::from_bytes(&saved(&[])).unwrap();
    assert!(c.is_empty());
    let dir = std::env::temp_dir().join(format!("bitnet-container-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.bnk");
    let ms = sample();
    container::save_to_path(&path, ms.iter().map(|(n, m)| (n.as_str(), m))).unwrap();
    let c = Container::open(&path).unwrap();
    assert_eq!(
        c.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
        ms.into_iter().map(|(_, m)| m).collect::<Vec<_>>()
    );
    assert!(matches!(
        Container::open(dir.join("missing")),
        Err(Error::Io(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplicate_names_are_refused_on_save() {
    let ms = sample();
    let mut out = Vec::new();
    let r = container::save(&mut out, [("a", &ms[0].1), ("a", &ms[1].1)]);
    assert!(matches!(r, Err(Error::InvalidData(_))));
    assert!(out.is_empty(), "nothing written");
}

#[test]
fn every_truncation_and_every_flipped_byte_is_an_error() {
    let file = saved(&sample());
    for n in 0..file.len() {
        assert!(
            Container::from_bytes(&file[..n]).is_err(),
            "truncated to {n}"
        );
    }
    let mut longer = file.clone();
    longer.push(0);
    assert!(Container::from_bytes(&longer).is_err());
    // Every byte flipped: the checksum (or the magic/version/length before it) catches it.
    for i in 0..file.len() {
        let mut f = file.clone();
        f[i] ^= 0x5A;
        assert!(Container::from_bytes(&f).is_err(), "byte {i}");
    }
}

/// With the checksum rewritten after the edit, each header field is checked on its own.
#[test]
fn bad_fields_with_a_valid_checksum_are_errors() {
    let ms = sample();
    let file = saved(&ms);
    let edit = |at: usize, bytes: &[u8]| {
        let mut f = file.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        let sum = container::checksum(&f);
        f[32..40].copy_from_slice(&sum.to_le_bytes());
        Container::from_bytes(&f)
    };
    assert!(Container::from_bytes(&file).is_ok());
    for v in [0u32, container::VERSION + 1] {
        assert!(matches!(
            edit(8, &v.to_le_bytes()),
            Err(Error::Unsupported(_))
        ));
    }
    let e = 40; // the first entry
    let cases: Vec<(usize, Vec<u8>)> = vec![
        (12, 1000u32.to_le_bytes().to_vec()), // count: table past the end
        (16, 8u64.to_le_bytes().to_vec()),    // header length below the table
        (e, 9u32.to_le_bytes().to_vec()),     // format id
        (e + 4, 7u32.to_le_bytes().to_vec()), // scale kind
        (e + 8, 100u64.to_le_bytes().to_vec()), // rows: data length no longer fits
        (e + 8, 0u64.to_le_bytes().to_vec()), // rows = 0
        (e + 16, u64::MAX.to_le_bytes().to_vec()), // cols
        (e + 24, 1u64.to_le_bytes().to_vec()), // data offset misaligned
        (e + 24, (1u64 << 62).to_le_bytes().to_vec()), // data offset out of the file
        (e + 32, u64::MAX.to_le_bytes().to_vec()), // data length
        (e + 40, u64::MAX.to_le_bytes().to_vec()), // name offset
        (e + 48, u32::MAX.to_le_bytes().to_vec()), // name length
        (e + 52, f32::NAN.to_bits().to_le_bytes().to_vec()), // scale
        (e + 52, 0f32.to_bits().to_le_bytes().to_vec()),
        (e + 56, 64u64.to_le_bytes().to_vec()), // a per-row offset with one scale
    ];
    for (at, bytes) in cases {
        assert!(edit(at, &bytes).is_err(), "field at {at}");
    }
    // Invalid packed bytes (an I2_S code 3 everywhere) in the first matrix.
    let off = u64::from_le_bytes(file[e + 24..e + 32].try_into().unwrap()) as usize;
    assert!(matches!(edit(off, &[0xFF; 64]), Err(Error::InvalidData(_))));
    // Two entries with one name.
    let name0 = u64::from_le_bytes(file[e + 40..e + 48].try_into().unwrap());
    let mut f = file.clone();
    f[e + 64 + 40..e + 64 + 48].copy_from_slice(&name0.to_le_bytes());
    f[e + 64 + 48..e + 64 + 52].copy_from_slice(&file[e + 48..e + 52]);
    let sum = container::checksum(&f);
    f[32..40].copy_from_slice(&sum.to_le_bytes());
    assert!(matches!(Container::from_bytes(&f), Err(Error::InvalidData(m)) if m.contains("twice")));
}

#[test]
fn per_row_scales_round_trip_and_are_checked() {
    let ms = sample();
    let file = saved(&ms);
    let c = Container::from_bytes(&file).unwrap();
    let l = c.get("per_row").unwrap();
    assert_eq!(l.scales(), Scales::PerRow(&[0.5, 1.5, 2.0, 0.125, 3.0]));
    assert_eq!(l, &ms[3].1);
    // The last entry's scales: a NaN there (checksum made valid) is an error naming it.
    let e = 40 + 3 * 64;
    assert_eq!(
        u32::from_le_bytes(file[e + 4..e + 8].try_into().unwrap()),
        1
    );
    let off = u64::from_le_bytes(file[e + 56..e + 64].try_into().unwrap()) as usize;
    assert_eq!(off % 64, 0);
    assert_eq!(&file[off..off + 4], &0.5f32.to_le_bytes());
    for bad in [f32::NAN, 0.0, -1.0] {
        let mut f = file.clone();
        f[off + 8..off + 12].copy_from_slice(&bad.to_le_bytes());
        let sum = container::checksum(&f);
        f[32..40].copy_from_slice(&sum.to_le_bytes());
        assert!(Container::from_bytes(&f).is_err(), "{bad}");
    }
}

/// With the `mmap` feature, `Container::map` maps the file: each matrix's bytes lie in a
/// mapping of that very file (read from /proc/self/maps), not in a copy.
#[cfg(all(feature = "mmap", target_os = "linux"))]
#[test]
fn open_maps_the_file_without_a_copy() {
    let dir = std::env::temp_dir().join(format!("bitnet-container-map-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mapped.bnk");
    let ms = sample();
    container::save_to_path(&path, ms.iter().map(|(n, m)| (n.as_str(), m))).unwrap();
    // SAFETY: nothing else touches this test's own file while it is mapped.
    let c = unsafe { Container::map(&path) }.unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let canon = std::fs::canonicalize(&path).unwrap();
    let regions: Vec<(usize, usize)> = maps
        .lines()
        .filter(|l| l.ends_with(canon.to_str().unwrap()))
        .map(|l| {
            let r = l.split_whitespace().next().unwrap();
            let (a, b) = r.split_once('-').unwrap();
            (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            )
        })
        .collect();
    assert!(!regions.is_empty(), "the file is not mapped");
    for (_, m) in c.iter() {
        let p = m.packed_bytes().as_ptr() as usize;
        assert!(
            regions.iter().any(|&(a, b)| a <= p && p < b),
            "not in the mapping"
        );
    }
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Version 2 changed the I2_S_COL layout only: a version 1 file is still read, unless it
/// holds an I2_S_COL matrix, whose old bytes (blocks of 256 rows) would be misread: that is
/// an `Unsupported` error naming the matrix, never a silently wrong matrix.
#[test]
fn version_1_files_load_except_old_i2s_col_bytes() {
    let as_v1 = |mut file: Vec<u8>| {
        assert_eq!(file[8..12], container::VERSION.to_le_bytes());
        file[8..12].copy_from_slice(&container::OLD_COL_VERSION.to_le_bytes());
        let sum = container::checksum(&file);
        file[32..40].copy_from_slice(&sum.to_le_bytes());
        file
    };
    let ms = sample();
    let c = Container::from_bytes(&as_v1(saved(&ms))).unwrap();
    for ((_, m), (_, l)) in ms.iter().zip(c.iter()) {
        assert_eq!(l, m);
    }
    let col = TernaryMatrix::from_ternary(&trits(300 * 70, 4), 300, 70, 1.0, Format::I2SCol);
    let ms = vec![("col".to_string(), col.unwrap())];
    assert_eq!(
        Container::from_bytes(&saved(&ms)).unwrap().get("col"),
        Some(&ms[0].1)
    );
    match Container::from_bytes(&as_v1(saved(&ms))) {
        Err(Error::Unsupported(msg)) => assert!(msg.contains("'col'") && msg.contains("I2_S_COL")),
        other => panic!("old I2_S_COL bytes loaded: {other:?}"),
    }
}
