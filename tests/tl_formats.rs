//! TL1 / TL2 specifics: packing round trips through the public API, validation of wrapped
//! bytes, and kernels against the reference around the bounded table chunk and far past it
//! (one pass), with values that differ per column.

mod common;

use bitnet_kernels::kernels::{self, SCALAR};
use bitnet_kernels::{Error, Format, TernaryMatrix};
use common::{kernel_sets, naive_gemm};

const TL: [Format; 2] = [Format::TL1, Format::TL2];

/// A deterministic pseudo-random sequence (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u64> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        })
        .collect()
}

fn trits(seed: u64, len: usize) -> Vec<i8> {
    noise(seed, len)
        .into_iter()
        .map(|v| (v % 3) as i8 - 1)
        .collect()
}

fn acts(seed: u64, len: usize) -> Vec<i8> {
    noise(seed, len)
        .into_iter()
        .map(|v| v as u8 as i8)
        .collect()
}

#[test]
fn pack_unpack_and_from_packed_round_trip() {
    for f in TL {
        for (rows, cols) in [
            (1, 1),
            (3, 2),
            (63, 3),
            (64, 23),
            (65, 24),
            (130, 25),
            (7, 100),
        ] {
            let t = trits(rows as u64 * 1000 + cols as u64, rows * cols);
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 0.25, f).unwrap();
            assert_eq!(m.to_ternary(), t, "{} {rows}x{cols}", f.name());
            let w = TernaryMatrix::from_packed(m.packed_bytes(), rows, cols, 0.25, f).unwrap();
            assert_eq!(w.packed_bytes(), m.packed_bytes());
            assert_eq!(w.to_ternary(), t);
            // Converting between formats keeps the trits.
            let i = m.to_format(Format::I2S).unwrap();
            assert_eq!(i.to_format(f).unwrap().packed_bytes(), m.packed_bytes());
        }
    }
}

#[test]
fn layouts_pad_to_tiles_and_steps() {
    let l = Format::TL1.layout(65, 17).unwrap();
    assert_eq!(
        (l.rows_padded, l.cols_padded, l.packed_len),
        (128, 32, 128 * 32 / 4)
    );
    let l = Format::TL2.layout(64, 25).unwrap();
    assert_eq!(
        (l.rows_padded, l.cols_padded, l.packed_len),
        (64, 48, 64 * 48 * 5 / 24)
    );
    // 6912 x 2560: TL2 holds 1.185x fewer bytes than I2_S (2560 pads to 2568).
    let i2s = Format::I2S.layout(6912, 2560).unwrap().packed_len;
    let tl2 = Format::TL2.layout(6912, 2560).unwrap().packed_len;
    assert!(i2s as f64 / tl2 as f64 > 1.18);
}

/// Every single-byte corruption of a small packed matrix is either rejected or decodes to
/// a different, valid matrix whose re-packing gives back exactly the corrupted bytes
/// (one matrix, one packed form).
#[test]
fn corrupted_bytes_are_rejected_or_canonical() {
    for f in TL {
        let (rows, cols) = (5, 29);
        let t = trits(7, rows * cols);
        let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
        let good = m.packed_bytes().to_vec();
        let (mut rejected, mut accepted) = (0, 0);
        for (i, v) in noise(11, good.len() * 2).into_iter().enumerate() {
            let mut p = good.clone();
            let at = i % good.len();
            p[at] ^= (v as u8) | 1;
            match TernaryMatrix::from_packed(&p, rows, cols, 1.0, f) {
                Ok(w) => {
                    accepted += 1;
                    let again = TernaryMatrix::from_ternary(&w.to_ternary(), rows, cols, 1.0, f);
                    assert_eq!(
                        again.unwrap().packed_bytes(),
                        &p[..],
                        "{} byte {at}",
                        f.name()
                    );
                }
                Err(Error::InvalidData(_)) => rejected += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(rejected > 0 && accepted > 0, "{rejected} {accepted}");
    }
}

#[test]
fn wrong_lengths_are_rejected() {
    for f in TL {
        let m = TernaryMatrix::from_ternary(&[1, -1, 0], 1, 3, 1.0, f).unwrap();
        let mut p = m.packed_bytes().to_vec();
        p.push(0);
        assert!(matches!(
            TernaryMatrix::from_packed(&p, 1, 3, 1.0, f),
            Err(Error::LengthMismatch { .. })
        ));
    }
}

/// The SIMD kernels of this machine really are tested for TL formats where the CPU has them.
#[test]
fn simd_tl_kernels_are_registered() {
    for f in TL {
        let sets: Vec<_> = kernel_sets(f).iter().map(|k| k.name()).collect();
        assert!(sets.contains(&"scalar"));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                assert!(sets.contains(&"avx2"), "{} {sets:?}", f.name());
            }
            if std::arch::is_x86_feature_detected!("avx512vbmi")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                assert!(sets.contains(&"avx512"), "{} {sets:?}", f.name());
            }
        }
    }
    assert!(kernels::available().count() >= 1);
}

/// Columns around the C kernels' table passes (224 steps: 3584 columns for TL1, 5376 for
/// TL2) and beyond (2 and 3 passes), with per-column values, rows not a multiple of the tile.
#[test]
fn chunk_edges_match_reference() {
    for cols in [3583, 3584, 3585, 5375, 5376, 5377, 7169, 10753] {
        let rows = 70;
        let t = trits(cols as u64, rows * cols);
        for n in [1, 3] {
            let x = acts(cols as u64 + 99, n * cols);
            let want = naive_gemm(&t, rows, cols, &x, n);
            for f in TL {
                let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
                for k in kernel_sets(f) {
                    let mut y = vec![i32::MIN; n * rows];
                    k.gemm_i8(&m, &x, n, &mut y).unwrap();
                    assert_eq!(y, want, "{} {} {rows}x{cols} n={n}", k.name(), f.name());
                }
            }
        }
    }
    let _ = &SCALAR;
}

/// Extreme activations with every TL2 sign/index combination present in one row.
#[test]
fn all_groups_against_extremes() {
    let cols = 27 * 3 * 5;
    let rows = 67;
    // Row r holds every 3-trit group, rotated by r.
    let t: Vec<i8> = (0..rows * cols)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            let v = ((c / 3 + r) % 27) as i8;
            [v / 9 - 1, v / 3 % 3 - 1, v % 3 - 1][c % 3]
        })
        .collect();
    for xs in [
        [127i8, 127, 127],
        [-128, -128, -128],
        [127, -128, 127],
        [-128, 127, -1],
    ] {
        let x: Vec<i8> = (0..cols).map(|c| xs[c % 3]).collect();
        let want = naive_gemm(&t, rows, cols, &x, 1);
        for f in TL {
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
            for k in kernel_sets(f) {
                let mut y = vec![0; rows];
                k.gemv_i8(&m, &x, &mut y).unwrap();
                assert_eq!(y, want, "{} {}", k.name(), f.name());
            }
        }
    }
}

/// K far beyond the old stack chunk (224 steps), ragged in rows and columns: the one-pass
/// kernels (tables of the whole row built once per call, in the thread's scratch or the
/// caller's workspace, shared by every thread) against the naive product, through the
/// convenient calls (one thread and, at 300 rows, the pool), a row range, the workspace
/// products and a row list.
#[test]
fn long_rows_one_pass_match_reference() {
    use bitnet_kernels::matmul::{Activations, Output, QuantizedActivations, Workspace};
    for (rows, cols) in [(70, 14336), (67, 14337), (300, 17000)] {
        let t = trits(cols as u64 + 5, rows * cols);
        for n in [1, 2] {
            // Quantized once (the workspace products take it), values over the whole int8 range.
            let xf: Vec<f32> = acts(cols as u64 + 7, n * cols)
                .into_iter()
                .map(f32::from)
                .collect();
            let q = QuantizedActivations::quantize(&xf, n, cols).unwrap();
            let x: Vec<i8> = (0..n).flat_map(|j| q.row(j).to_vec()).collect();
            let want = naive_gemm(&t, rows, cols, &x, n);
            for f in TL {
                let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
                let mut ws = Workspace::for_products(&[&m], n).unwrap();
                for k in kernel_sets(f) {
                    let what = format!("{} {} {rows}x{cols} n={n}", k.name(), f.name());
                    let mut y = vec![i32::MIN; n * rows];
                    k.gemm_i8(&m, &x, n, &mut y).unwrap();
                    assert_eq!(y, want, "{what}");
                    let (a, b) = (3, rows - 5);
                    let mut yr = vec![i32::MIN; n * (b - a)];
                    k.gemm_i8_rows(&m, &x, n, a..b, &mut yr).unwrap();
                    for j in 0..n {
                        assert_eq!(yr[j * (b - a)..][..b - a], want[j * rows + a..][..b - a]);
                    }
                    let mut yw = vec![i32::MIN; n * rows];
                    let mut outs = [Output::I32(&mut yw)];
                    k.products(&[&m], Activations::Quantized(&q), &mut outs, &mut ws)
                        .unwrap();
                    assert_eq!(yw, want, "{what} products");
                    if n == 1 {
                        let list: Vec<usize> = (0..rows).rev().step_by(7).collect();
                        let mut yl = vec![i32::MIN; list.len()];
                        k.gemv_row_list(
                            &m,
                            Activations::Quantized(&q),
                            &list,
                            Output::I32(&mut yl),
                            &mut ws,
                        )
                        .unwrap();
                        let wl: Vec<i32> = list.iter().map(|&r| want[r]).collect();
                        assert_eq!(yl, wl, "{what} row list");
                    }
                }
            }
        }
    }
}

/// A GEMM whose tables exceed the one-pass budget (16 MiB for all its activation rows) runs
/// the bounded kernels, tables rebuilt per chunk of K on their stack: several passes at
/// columns past the chunk, exact all the same.
#[test]
fn beyond_table_budget_runs_bounded_passes() {
    for (cols, n) in [(5377, 400), (10753, 200)] {
        let rows = 66;
        let t = trits(cols as u64 + 11, rows * cols);
        let x = acts(cols as u64 + 13, n * cols);
        let want = naive_gemm(&t, rows, cols, &x, n);
        for f in TL {
            let m = TernaryMatrix::from_ternary(&t, rows, cols, 1.0, f).unwrap();
            for k in kernel_sets(f) {
                let mut y = vec![i32::MIN; n * rows];
                k.gemm_i8(&m, &x, n, &mut y).unwrap();
                assert_eq!(y, want, "{} {} {rows}x{cols} n={n}", k.name(), f.name());
            }
        }
    }
}
