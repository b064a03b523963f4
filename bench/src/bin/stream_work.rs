//! How fast one core streams bytes from DRAM while it computes on them: a read of every
//! 64-byte line with `k` independent `vpdpbusd` on it (k = 0 is the streaming probe's plain
//! read), from a buffer far larger than the last-level cache and from a 1 MiB one that stays in
//! L2, without a software prefetch and with one `--ahead` bytes ahead (default 4096, the 3-bit
//! KV kernels' distance) into L1 (`prefetcht0`) or into L2 (`prefetcht1`). The question it answers: at a kernel's density of vector work per byte, what
//! share of the plain streaming rate can a one-thread stream reach at all, before any other
//! inefficiency of the kernel. The 3-bit KV scores and V kernels do about 19 vector operations
//! per 64 bytes of codes (7 per 24-byte chunk), the fp16 KV baseline about 12.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --bin stream_work -- --ahead 4096
//! ```

fn main() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vnni")
    {
        return x86::run();
    }
    println!("stream_work: needs AVX-512 F and VNNI (x86-64); nothing measured");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use bitnet_bench::probe::LargeBuffer;
    use bitnet_bench::stats;
    use std::arch::x86_64::*;

    /// Bytes of the DRAM buffer (read in 64 MiB steps that walk it in order) and of the L2 one.
    const DRAM: usize = 1 << 30;
    const STEP: usize = 64 << 20;
    const L2: usize = 1 << 20;
    /// How to prefetch: not at all, or each line `ahead` bytes ahead into L1 or into L2.
    #[derive(Clone, Copy)]
    enum Pf {
        None,
        L1,
        L2,
    }

    /// Reads `p` (a multiple of 256 bytes, 64-byte aligned): per line one load, an add and `K`
    /// `vpdpbusd` spread over 16 accumulators (no dependency chain limits them).
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn stream<const K: usize>(p: &[u8], pf: Pf, ahead: usize) -> i32 {
        let mut a = [_mm512_setzero_si512(); 16];
        let mut z = _mm512_setzero_si512();
        let w = _mm512_set1_epi8(3);
        let base = p.as_ptr();
        for o in (0..p.len()).step_by(256) {
            for l in 0..4 {
                // A hint: never faults, so past the end is harmless.
                let q = base.wrapping_add(o + ahead + 64 * l).cast();
                match pf {
                    Pf::None => {}
                    Pf::L1 => _mm_prefetch::<_MM_HINT_T0>(q),
                    Pf::L2 => _mm_prefetch::<_MM_HINT_T1>(q),
                }
            }
            for l in 0..4 {
                let x = _mm512_load_si512(base.add(o + 64 * l).cast());
                z = _mm512_add_epi32(z, x);
                for k in 0..K {
                    let i = (l * K + k) % 16;
                    a[i] = _mm512_dpbusd_epi32(a[i], x, w);
                }
            }
        }
        for x in a {
            z = _mm512_add_epi32(z, x);
        }
        _mm512_reduce_add_epi32(z)
    }

    fn one(k: usize, p: &[u8], pf: Pf, ahead: usize) -> i32 {
        // SAFETY: main() checked AVX-512F and VNNI.
        unsafe {
            match k {
                0 => stream::<0>(p, pf, ahead),
                2 => stream::<2>(p, pf, ahead),
                4 => stream::<4>(p, pf, ahead),
                8 => stream::<8>(p, pf, ahead),
                12 => stream::<12>(p, pf, ahead),
                16 => stream::<16>(p, pf, ahead),
                20 => stream::<20>(p, pf, ahead),
                24 => stream::<24>(p, pf, ahead),
                _ => unreachable!(),
            }
        }
    }

    pub fn run() {
        let ahead = bitnet_bench::data::flag("--ahead", 4096);
        // 2 MiB-aligned, on huge pages where the OS gives them, as the streaming probe's.
        let (dram, l2) = (LargeBuffer::zeroed(DRAM), LargeBuffer::zeroed(L2));
        let (dram, l2) = (dram.as_slice(), l2.as_slice());
        let mut sink = 0i32;
        // Median GB/s of `n` timed calls of `f` on consecutive pieces (round-robin).
        let mut rate = |k: usize, pf: Pf, cold: bool| {
            let (piece, n) = if cold { (STEP, 16) } else { (L2, 200) };
            let mut off = 0;
            let mut v: Vec<f64> = (0..n + 1)
                .map(|_| {
                    let p = if cold { &dram[off..off + piece] } else { l2 };
                    off = (off + piece) % DRAM;
                    let t = stats::time(|| sink ^= one(k, p, pf, ahead));
                    piece as f64 / t / 1e9
                })
                .skip(1)
                .collect();
            stats::median(&mut v)
        };
        println!("One core, a 64-byte load and k vpdpbusd per line; GB/s, median of 16 steps of 64 MiB (DRAM, from a 1 GiB buffer) or 200 reads of 1 MiB (L2):\n");
        println!("| k | L2 | DRAM | DRAM, prefetcht0 {ahead} B ahead | DRAM, prefetcht1 {ahead} B ahead | best DRAM ÷ best DRAM at k = 0 |");
        println!("|---|---|---|---|---|---|");
        let mut top = 0.0;
        for k in [0, 2, 4, 8, 12, 16, 20, 24] {
            let c = rate(k, Pf::None, false);
            let d = [Pf::None, Pf::L1, Pf::L2].map(|pf| rate(k, pf, true));
            let best = d.iter().copied().fold(0.0, f64::max);
            if k == 0 {
                top = best;
            }
            println!(
                "| {k} | {c:.1} | {:.1} | {:.1} | {:.1} | {:.0} % |",
                d[0],
                d[1],
                d[2],
                100.0 * best / top
            );
        }
        std::hint::black_box(sink);
    }
}
