//! The engine's calls (issue 13) against the single-matrix calls, bit for bit, for every
//! kernel set this machine runs with its own kernels and every format:
//!
//! 1. `KernelSet::products` (one input, several matrices, one dispatch; f32 or quantized
//!    input; f32 or int32 output) equals separate `gemm_f32` / `gemm_i8` calls, on ragged
//!    shapes, with one workspace reused across calls of different shapes.
//! 2. `KernelSet::gemv_row_list` equals those rows of the whole product (any order,
//!    repeats), and rejects an out-of-range row before writing.
//! 3. A workspace too small is an error that writes nothing; the convenient forms
//!    (`ternary_gemv_multi`, `ternary_gemm_quantized`, ...) equal the old calls.
//! 4. With a workspace and one thread the products allocate nothing (a per-thread counting
//!    allocator).
//! 5. `set_num_threads`: results equal on 1, 2 and 3 threads and the default; a panic inside
//!    a worker neither hangs nor poisons later calls.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bitnet_kernels::kernels::KernelSet;
use bitnet_kernels::{
    gemm_i8, gemm_i8_quantized, set_num_threads, set_thread_pool, ternary_gemm, ternary_gemm_multi,
    ternary_gemm_quantized, ternary_gemv, ternary_gemv_multi, ternary_gemv_row_list, Activations,
    Format, Output, QuantizedActivations, TernaryMatrix, ThreadPoolKind, Workspace,
};
use common::{cases, formats, kernel_sets};
use proptest::prelude::*;

/// Counts this thread's allocations (a thread-local count, so tests running at the same
/// time on other threads do not disturb it).
struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

/// Deterministic trits and activations from a seed (a small LCG: the shapes are what
/// proptest explores).
fn trits(len: usize, seed: u64) -> Vec<i8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 3) as i8 - 1
        })
        .collect()
}

fn floats(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 7.0
        })
        .collect()
}

/// Matrices of the given row counts, `cols` columns, formats from `fmts` in turn.
fn matrices(rows: &[usize], cols: usize, fmts: &[Format], seed: u64) -> Vec<TernaryMatrix> {
    rows.iter()
        .enumerate()
        .map(|(i, &r)| {
            let f = fmts[i % fmts.len()];
            let t = trits(r * cols, seed + i as u64);
            let m = TernaryMatrix::from_ternary(&t, r, cols, 0.25 + i as f32, f).unwrap();
            // Every other matrix carries one scale per row: the fused calls and row lists must
            // rescale each row by its own scale, as the plain calls do.
            if i % 2 == 1 {
                let s = (0..r).map(|j| 0.125 + (j % 7) as f32 * 0.375).collect();
                m.with_row_scales(s).unwrap()
            } else {
                m
            }
        })
        .collect()
}

/// Checks `products` against separate calls for one kernel set, f32 and quantized input,
/// f32 and int32 output, in workspace `ws` (grown as needed, reused across cases).
fn check_products(k: &KernelSet, ms: &[TernaryMatrix], n: usize, seed: u64, ws: &mut Workspace) {
    let refs: Vec<&TernaryMatrix> = ms.iter().collect();
    let cols = ms[0].cols();
    let x = floats(n * cols, seed);
    ws.reserve(Workspace::bytes_for(&refs, n).unwrap());
    // The separate calls.
    let want: Vec<Vec<f32>> = ms
        .iter()
        .map(|m| {
            let mut y = vec![f32::NAN; n * m.rows()];
            k.gemm_f32(m, &x, n, &mut y).unwrap();
            y
        })
        .collect();
    let mut q = QuantizedActivations::default();
    q.requantize(k, &x, n, cols).unwrap();
    let xi8: Vec<i8> = (0..n).flat_map(|j| q.row(j).to_vec()).collect();
    let want_i32: Vec<Vec<i32>> = ms
        .iter()
        .map(|m| {
            let mut y = vec![i32::MIN; n * m.rows()];
            k.gemm_i8(m, &xi8, n, &mut y).unwrap();
            y
        })
        .collect();
    for input in [Activations::F32 { x: &x, n }, Activations::Quantized(&q)] {
        let mut ys: Vec<Vec<f32>> = ms.iter().map(|m| vec![-1.0; n * m.rows()]).collect();
        let mut outs: Vec<Output> = ys.iter_mut().map(|y| Output::F32(y)).collect();
        k.products(&refs, input, &mut outs, ws).unwrap();
        for (i, (y, w)) in ys.iter().zip(&want).enumerate() {
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                w.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{} f32 out, matrix {i} ({}), n {n}, {:?}",
                k.name(),
                ms[i].format().name(),
                input
            );
        }
        let mut ys: Vec<Vec<i32>> = ms.iter().map(|m| vec![7; n * m.rows()]).collect();
        let mut outs: Vec<Output> = ys.iter_mut().map(|y| Output::I32(y)).collect();
        k.products(&refs, input, &mut outs, ws).unwrap();
        assert_eq!(ys, want_i32, "{} i32 out, n {n}", k.name());
    }
}

/// The kernel sets that run every format in `fmts` with their own kernels.
fn sets_for(fmts: &[Format]) -> Vec<&'static KernelSet> {
    kernel_sets(fmts[0])
        .into_iter()
        .filter(|k| fmts.iter().all(|&f| k.has_own(f)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(24)))]

    /// One to four matrices of ragged rows, mixed formats, ragged cols, n = 1..=4.
    #[test]
    fn products_equal_separate_calls(
        rows in prop::collection::vec(1usize..200, 1..5),
        cols in 1usize..700,
        n in 1usize..5,
        mixed in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let all = formats();
        let mut ws = Workspace::default();
        for (fi, &f) in all.iter().enumerate() {
            let fmts: Vec<Format> = if mixed {
                all[fi..].iter().chain(&all[..fi]).copied().collect()
            } else {
                vec![f]
            };
            let ms = matrices(&rows, cols, &fmts, seed);
            for k in sets_for(&fmts) {
                check_products(k, &ms, n, seed, &mut ws);
            }
        }
    }

    /// A row list (any order, repeats) equals those rows of the whole product.
    #[test]
    fn row_list_equals_whole_rows(
        rows in 1usize..300,
        cols in 1usize..600,
        picks in prop::collection::vec(any::<prop::sample::Index>(), 1..40),
        runs in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut list: Vec<usize> = picks.iter().map(|p| p.index(rows)).collect();
        if runs {
            // Runs of consecutive rows, as a gate's non-zeros often are.
            list.sort_unstable();
            let extra: Vec<usize> = list.iter().map(|&r| (r + 1).min(rows - 1)).collect();
            list.extend(extra);
            list.sort_unstable();
            list.dedup();
        }
        let x = floats(cols, seed);
        let mut ws = Workspace::default();
        for f in formats() {
            let m = &matrices(&[rows, rows], cols, &[f], seed)[(seed % 2) as usize];
            ws.reserve(Workspace::bytes_for(&[m], 1).unwrap());
            for k in kernel_sets(f) {
                let mut whole = vec![0.0f32; rows];
                k.gemm_f32(m, &x, 1, &mut whole).unwrap();
                let mut y = vec![f32::NAN; list.len()];
                k.gemv_row_list(m, Activations::F32 { x: &x, n: 1 }, &list, Output::F32(&mut y), &mut ws).unwrap();
                let want: Vec<u32> = list.iter().map(|&r| whole[r].to_bits()).collect();
                prop_assert_eq!(y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "{} {}", k.name(), f.name());
            }
        }
    }
}

/// Out-of-range rows, too-small workspaces, mismatched shapes: errors, nothing written.
#[test]
fn bad_calls_are_errors_and_write_nothing() {
    for f in formats() {
        let ms = matrices(&[70, 33], 300, &[f], 5);
        let refs: Vec<&TernaryMatrix> = ms.iter().collect();
        let x = floats(2 * 300, 1);
        let need = Workspace::bytes_for(&refs, 2).unwrap();
        let mut small = Workspace::with_bytes(need - 8);
        let (mut a, mut b) = (vec![1.5f32; 140], vec![1.5f32; 66]);
        let r = bitnet_kernels::matmul::products(
            &refs,
            Activations::F32 { x: &x, n: 2 },
            &mut [Output::F32(&mut a), Output::F32(&mut b)],
            &mut small,
        );
        assert!(r.is_err(), "{}: too small a workspace", f.name());
        assert!(a.iter().chain(&b).all(|&v| v == 1.5));
        let mut ws = Workspace::with_bytes(need);
        // Wrong output count, wrong output length, mismatched cols.
        assert!(bitnet_kernels::matmul::products(
            &refs,
            Activations::F32 { x: &x, n: 2 },
            &mut [Output::F32(&mut a)],
            &mut ws
        )
        .is_err());
        assert!(bitnet_kernels::matmul::products(
            &refs,
            Activations::F32 { x: &x, n: 2 },
            &mut [Output::F32(&mut a[..139]), Output::F32(&mut b)],
            &mut ws
        )
        .is_err());
        let other = matrices(&[4], 301, &[f], 1);
        assert!(
            ternary_gemv_multi(&[&ms[0], &other[0]], &x[..300], &mut [&mut a, &mut b]).is_err()
        );
        // Row list: an index out of range.
        let mut y = vec![2.5f32; 3];
        assert!(ternary_gemv_row_list(&ms[0], &x[..300], &[0, 70, 1], &mut y).is_err());
        assert!(y.iter().all(|&v| v == 2.5));
        // Non-finite input.
        let mut bad = x.clone();
        bad[301] = f32::NAN;
        assert!(ternary_gemm_multi(&refs, &bad, 2, &mut [&mut a, &mut b]).is_err());
        assert!(QuantizedActivations::quantize(&bad, 2, 300).is_err());
    }
}

/// The convenient forms equal the old calls (active kernel set).
#[test]
fn convenient_forms_equal_old_calls() {
    for f in formats() {
        let ms = matrices(&[640, 2560 / 4, 100], 2560, &[f], 9);
        let x = floats(3 * 2560, 3);
        let mut got: Vec<Vec<f32>> = ms.iter().map(|m| vec![0.0; 3 * m.rows()]).collect();
        let mut outs: Vec<&mut [f32]> = got.iter_mut().map(|v| v.as_mut_slice()).collect();
        ternary_gemm_multi(&ms.iter().collect::<Vec<_>>(), &x, 3, &mut outs).unwrap();
        let q = QuantizedActivations::quantize(&x, 3, 2560).unwrap();
        for (m, g) in ms.iter().zip(&got) {
            let mut want = vec![0.0f32; 3 * m.rows()];
            ternary_gemm(m, &x, 3, &mut want).unwrap();
            assert_eq!(g, &want);
            let mut yq = vec![0.0f32; 3 * m.rows()];
            ternary_gemm_quantized(m, &q, &mut yq).unwrap();
            assert_eq!(yq, want);
            let mut acc = vec![0i32; 3 * m.rows()];
            gemm_i8_quantized(m, &q, &mut acc).unwrap();
            let xi8: Vec<i8> = (0..3).flat_map(|j| q.row(j).to_vec()).collect();
            let mut want_acc = vec![0i32; 3 * m.rows()];
            gemm_i8(m, &xi8, 3, &mut want_acc).unwrap();
            assert_eq!(acc, want_acc);
            let mut y1 = vec![0.0f32; m.rows()];
            let mut w1 = vec![0.0f32; m.rows()];
            ternary_gemv_multi(&[m], &x[..2560], &mut [&mut y1]).unwrap();
            ternary_gemv(m, &x[..2560], &mut w1).unwrap();
            assert_eq!(y1, w1);
        }
    }
}

/// With a large enough workspace and one thread, the products allocate nothing: fused f32
/// and quantized input, f32 and int32 output, n = 1 and 8, ragged rows, and row lists.
#[test]
fn workspace_products_allocate_nothing() {
    let k = bitnet_kernels::kernels::active().unwrap();
    for f in formats() {
        let ms = matrices(&[2560, 640, 637], 2560, &[f], 2);
        let refs: Vec<&TernaryMatrix> = ms.iter().collect();
        let mut ws = Workspace::for_products(&refs, 8).unwrap();
        let x = floats(8 * 2560, 4);
        let q = QuantizedActivations::quantize(&x, 8, 2560).unwrap();
        let mut ys: Vec<Vec<f32>> = ms.iter().map(|m| vec![0.0; 8 * m.rows()]).collect();
        let mut acc: Vec<Vec<i32>> = ms.iter().map(|m| vec![0; 8 * m.rows()]).collect();
        let list: Vec<usize> = (0..637).step_by(3).chain(5..40).collect();
        let mut yl = vec![0.0f32; list.len()];
        let _g = THREADS.lock().unwrap_or_else(|e| e.into_inner());
        set_num_threads(1).unwrap();
        for n in [1, 8] {
            let before = allocs();
            {
                let [a, b, c] = &mut ys[..] else {
                    unreachable!()
                };
                let mut outs = [
                    Output::F32(&mut a[..n * 2560]),
                    Output::F32(&mut b[..n * 640]),
                    Output::F32(&mut c[..n * 637]),
                ];
                k.products(
                    &refs,
                    Activations::F32 {
                        x: &x[..n * 2560],
                        n,
                    },
                    &mut outs,
                    &mut ws,
                )
                .unwrap();
                let [a, b, c] = &mut acc[..] else {
                    unreachable!()
                };
                let mut outs = [Output::I32(a), Output::I32(b), Output::I32(c)];
                k.products(&refs, Activations::Quantized(&q), &mut outs, &mut ws)
                    .unwrap();
                k.gemv_row_list(
                    &ms[2],
                    Activations::F32 {
                        x: &x[..2560],
                        n: 1,
                    },
                    &list,
                    Output::F32(&mut yl),
                    &mut ws,
                )
                .unwrap();
            }
            assert_eq!(allocs() - before, 0, "{} n = {n}: allocations", f.name());
            // The counter counts: the convenient form allocates its first workspace here.
            let before = allocs();
            let fresh = std::thread::spawn(move || {
                let v = std::hint::black_box(vec![1u8; 10]);
                (allocs(), v.len())
            });
            let (inside, _) = fresh.join().unwrap();
            assert!(inside >= 1 && allocs() >= before);
        }
        set_num_threads(0).unwrap();
    }
}

/// Serializes the tests that change the thread setting (a process-wide one).
static THREADS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Any thread count gives the same bits, for one activation row (each chunk rescaled by the
/// thread that computed it) and for two; the first matrix's rows are ragged (its last tile
/// partly padding), the second has per-row scales.
#[test]
fn thread_counts_agree() {
    let _g = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let ms = matrices(&[6910, 2560], 2560, &[Format::I2S], 8);
    let refs: Vec<&TernaryMatrix> = ms.iter().collect();
    for n in [1, 2] {
        let x = floats(n * 2560, 6);
        let mut base: Option<Vec<Vec<f32>>> = None;
        let kinds = [ThreadPoolKind::Spinning, ThreadPoolKind::Rayon];
        for (t, kind) in [1, 2, 3, 0].into_iter().flat_map(|t| kinds.map(|k| (t, k))) {
            set_thread_pool(t, kind).unwrap();
            assert_eq!(bitnet_kernels::num_threads() == t, t != 0);
            let mut ys: Vec<Vec<f32>> = ms.iter().map(|m| vec![0.0; n * m.rows()]).collect();
            let mut outs: Vec<&mut [f32]> = ys.iter_mut().map(|v| v.as_mut_slice()).collect();
            ternary_gemm_multi(&refs, &x, n, &mut outs).unwrap();
            for (m, y) in ms.iter().zip(&ys) {
                let mut single = vec![0.0f32; n * m.rows()];
                ternary_gemm(m, &x, n, &mut single).unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(y), bits(&single), "n {n}, {t} threads, {kind:?}");
            }
            match &base {
                None => base = Some(ys),
                Some(b) => assert_eq!(&ys, b, "n {n}, {t} threads, {kind:?}"),
            }
        }
    }
    set_num_threads(0).unwrap();
}

/// A panic inside a job on either of the crate's own pools reaches the caller, does not hang,
/// and the next products run and agree: a panic on the calling thread's part, and one on
/// whichever thread claims a given chunk (a worker when it comes in time).
#[test]
fn worker_panic_neither_hangs_nor_poisons() {
    let _g = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let m = &matrices(&[6912], 2560, &[Format::I2S], 3)[0];
    let x = floats(2560, 2);
    let mut want = vec![0.0f32; 6912];
    set_num_threads(1).unwrap();
    ternary_gemv(m, &x, &mut want).unwrap();
    for kind in [ThreadPoolKind::Spinning, ThreadPoolKind::Rayon] {
        set_thread_pool(2, kind).unwrap();
        for bad in [0, 40, 63] {
            for _ in 0..3 {
                let r = std::panic::catch_unwind(|| {
                    let mut y = vec![0u8; 64];
                    bitnet_kernels::par::for_each_chunk(
                        64,
                        1,
                        2,
                        |ranges| bitnet_kernels::par::split_rows(&mut y, 1, ranges),
                        |r, _| {
                            // Slow enough that a worker claims some chunks.
                            std::thread::sleep(std::time::Duration::from_micros(20));
                            assert!(!r.contains(&bad), "a job panics");
                        },
                    );
                });
                assert!(r.is_err(), "{kind:?}: the panic reaches the caller");
                let mut y = vec![0.0f32; 6912];
                ternary_gemv_multi(&[m], &x, &mut [&mut y]).unwrap();
                assert_eq!(y, want, "{kind:?}");
            }
        }
    }
    set_num_threads(0).unwrap();
}
