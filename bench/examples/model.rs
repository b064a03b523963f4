//! The model benchmark: a real model file's ternary linear layers on this library's kernels.
//!
//! ```sh
//! cargo run --release -p bitnet-bench --features model --example model -- FILE.gguf
//! cargo run --release -p bitnet-bench --features model --example model -- HF_CHECKPOINT_DIR
//! cargo run --release -p bitnet-bench --features model --example model -- --synthetic bitnet-2b4t
//! ```
//! Options: `--format i2s|tl1|tl2` (default i2s), `--layers N` (synthetic: default 30),
//! `--keep` (keep the synthetic GGUF and the container in the temp directory).
//!
//! For every ternary tensor: imports it (timed: GB/s of file bytes), checks the int32
//! accumulators of our GEMV on random int8 activations against a dequantize-then-multiply
//! reference decoded here from the file's own bytes (GGUF: I2_S, TQ1_0, TQ2_0 by the rules
//! in docs/FORMATS.md §7; HF: the packed rule), and times the GEMV warm (the same tensor
//! again and again, cache-resident when it fits) and cold (the whole model in order, as a
//! decode step reads it: every tensor evicted since its last visit). The fp16 GEMV baseline
//! runs on the tensors of the first layer (block) only, warm and cold, and is scaled to the
//! whole model by the ratio of weights (a full fp16 copy of a 2B model needs 4+ GB).
//! Then: per-token time of all linear layers together and the tokens/s that bounds, the
//! container save and load (no copy, validated) times.
//!
//! `--synthetic bitnet-2b4t` writes a GGUF with the shapes of microsoft/bitnet-b1.58-2B-4T
//! (30 layers of q 2560x2560, k and v 640x2560, o 2560x2560, gate and up 6912x2560, down
//! 2560x6912; all I2_S with random trits) with the tests' own GGUF writer and uses it.

#[path = "../../tests/gguf/writer.rs"]
mod writer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use bitnet_bench::baseline::DenseMatrix;
use bitnet_bench::data::Rng;
use bitnet_bench::stats::{median, median_time};
use bitnet_kernels::container::{self, Container};
use bitnet_kernels::format::ggml::GGML_TYPE_I2_S;
use bitnet_kernels::gguf::Gguf;
use bitnet_kernels::hf::HfCheckpoint;
use bitnet_kernels::{gemv_i8, ternary_gemv, Format, TernaryMatrix};

/// One imported tensor with the trits decoded here from the file's bytes.
struct Tensor {
    name: String,
    m: TernaryMatrix,
    file_trits: Vec<i8>,
    file_bytes: usize,
}

fn decode_i2s(b: &[u8], n: usize) -> Vec<i8> {
    // 128-weight groups of 32 bytes: byte j holds elements j, j+32, j+64, j+96 in bits
    // 7:6, 5:4, 3:2, 1:0; code c is the trit c - 1.
    (0..n)
        .map(|e| {
            let (g, i) = (e / 128, e % 128);
            let byte = b[g * 32 + i % 32];
            ((byte >> (6 - 2 * (i / 32))) & 3) as i8 - 1
        })
        .collect()
}

fn decode_tq2(b: &[u8], n: usize) -> Vec<i8> {
    // 66-byte blocks of 256: byte 32h + m holds in bits 2l+1:2l element 128h + 32l + m.
    let mut t = vec![0i8; n];
    for (blk, out) in b.chunks_exact(66).zip(t.chunks_exact_mut(256)) {
        for (e, o) in out.iter_mut().enumerate() {
            let (h, l, m) = (e / 128, e % 128 / 32, e % 32);
            *o = ((blk[32 * h + m] >> (2 * l)) & 3) as i8 - 1;
        }
    }
    t
}

fn decode_tq1(b: &[u8], n: usize) -> Vec<i8> {
    let trit = |byte: u8, k: u32| ((((byte as u32 * 3u32.pow(k)) & 255) * 3) >> 8) as i8 - 1;
    let mut t = vec![0i8; n];
    for (blk, out) in b.chunks_exact(54).zip(t.chunks_exact_mut(256)) {
        for m in 0..32 {
            for k in 0..5 {
                out[32 * k + m] = trit(blk[m], k as u32);
            }
        }
        for m in 0..16 {
            for k in 0..5 {
                out[160 + 16 * k + m] = trit(blk[32 + m], k as u32);
            }
        }
        for n4 in 0..4 {
            for j in 0..4 {
                out[240 + 4 * n4 + j] = trit(blk[48 + j], n4 as u32);
            }
        }
    }
    t
}

fn decode_hf(b: &[u8], rows: usize, cols: usize) -> Vec<i8> {
    let q = rows / 4;
    let mut t = vec![0i8; rows * cols];
    for p in 0..q {
        for k in 0..cols {
            for i in 0..4 {
                t[(p + i * q) * cols + k] = ((b[p * cols + k] >> (2 * i)) & 3) as i8 - 1;
            }
        }
    }
    t
}

/// The 2B-4T shapes (rows = out features, cols = in features), one layer.
const LAYER: [(&str, usize, usize); 7] = [
    ("attn_q", 2560, 2560),
    ("attn_k", 640, 2560),
    ("attn_v", 640, 2560),
    ("attn_output", 2560, 2560),
    ("ffn_gate", 6912, 2560),
    ("ffn_up", 6912, 2560),
    ("ffn_down", 2560, 6912),
];

fn write_synthetic(path: &Path, layers: usize) -> std::io::Result<()> {
    let mut rng = Rng::new(7);
    // One random blob per shape and layer parity (distinct bytes per tensor would only cost
    // generation time: the reads are the same).
    let blobs: Vec<Vec<Vec<u8>>> = (0..2)
        .map(|_| {
            LAYER
                .iter()
                .map(|&(_, r, c)| {
                    let t: Vec<i8> = (0..r * c)
                        .map(|_| (rng.uniform() * 3.0) as i8 - 1)
                        .collect();
                    let m = TernaryMatrix::from_ternary(&t, r, c, 0.8, Format::I2S).unwrap();
                    m.to_bitnet_i2s().unwrap()
                })
                .collect()
        })
        .collect();
    let names: Vec<String> = (0..layers)
        .flat_map(|l| {
            LAYER
                .iter()
                .map(move |(n, _, _)| format!("blk.{l}.{n}.weight"))
        })
        .collect();
    let tensors: Vec<writer::Tensor> = (0..layers)
        .flat_map(|l| (0..LAYER.len()).map(move |i| (l, i)))
        .zip(&names)
        .map(|((l, i), name)| writer::Tensor {
            name,
            dims: vec![LAYER[i].2 as u64, LAYER[i].1 as u64],
            ggml_type: GGML_TYPE_I2_S,
            data: &blobs[l % 2][i],
        })
        .collect();
    let mut f = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(path)?);
    writer::write_gguf(&mut f, "bitnet-b1.58", 32, &tensors)
}

fn load(path: &Path, format: Format) -> (Vec<Tensor>, f64) {
    let t0 = Instant::now();
    if path.is_dir() {
        let c = HfCheckpoint::open(path).expect("open the checkpoint");
        let all = c.import_all(format).expect("import");
        let secs = t0.elapsed().as_secs_f64();
        let out = all
            .into_iter()
            .map(|(name, m)| {
                let (rows, cols) = (m.rows(), m.cols());
                // The reference decodes the file's packed bytes again, here, by the HF rule.
                let file_trits = decode_hf(c.packed_bytes(&name).unwrap(), rows, cols);
                Tensor {
                    name,
                    m,
                    file_trits,
                    file_bytes: rows / 4 * cols,
                }
            })
            .collect();
        return (out, secs);
    }
    // Mapped, as an engine loading a model would (the file's pages are read once, by the
    // importers, with no copy of the file first).
    // SAFETY: nothing else writes or truncates the model file while this program runs.
    let g = unsafe { Gguf::map(path) }.expect("map the GGUF file");
    let all = g.import_all(format).expect("import");
    let secs = t0.elapsed().as_secs_f64();
    let out = all
        .into_iter()
        .map(|(name, m)| {
            let info = g.tensor(&name).unwrap();
            let bytes = g.tensor_bytes(info).unwrap();
            let n = m.rows() * m.cols();
            let file_trits = match info.ggml_type {
                34 => decode_tq1(bytes, n),
                35 => decode_tq2(bytes, n),
                _ => decode_i2s(bytes, n),
            };
            Tensor {
                name,
                m,
                file_trits,
                file_bytes: bytes.len(),
            }
        })
        .collect();
    (out, secs)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let format: Format = opt("--format")
        .unwrap_or("i2s".into())
        .parse()
        .expect("--format");
    let keep = args.iter().any(|a| a == "--keep");
    let tmp = std::env::temp_dir().join(format!("bitnet-model-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let path: PathBuf = if let Some(s) = opt("--synthetic") {
        assert_eq!(s, "bitnet-2b4t", "the synthetic model is bitnet-2b4t");
        let layers: usize = opt("--layers").map_or(30, |l| l.parse().expect("--layers"));
        let p = tmp.join("bitnet-2b4t-synthetic.gguf");
        let t = Instant::now();
        write_synthetic(&p, layers).expect("write the synthetic GGUF");
        println!(
            "wrote {} ({layers} layers, I2_S) in {:.1} s",
            p.display(),
            t.elapsed().as_secs_f64()
        );
        p
    } else {
        PathBuf::from(
            args.iter()
                .find(|a| !a.starts_with("--"))
                .expect("usage: model FILE | --synthetic bitnet-2b4t"),
        )
    };
    println!(
        "kernel {}, {} threads, format {format}",
        bitnet_kernels::kernel_name().unwrap(),
        rayon::current_num_threads()
    );

    // Import (page cache warm: the file was just written or read; the first line of a cold
    // disk also includes the read).
    let (tensors, import_s) = load(&path, format);
    let file_bytes: usize = tensors.iter().map(|t| t.file_bytes).sum();
    let weights: usize = tensors.iter().map(|t| t.m.rows() * t.m.cols()).sum();
    println!(
        "{} ternary tensors, {:.3} G weights, {:.1} MB of tensor bytes; open + import: {:.3} s = {:.2} GB/s ({:.3} s a GB)",
        tensors.len(), weights as f64 / 1e9, file_bytes as f64 / 1e6, import_s,
        file_bytes as f64 / 1e9 / import_s, import_s / (file_bytes as f64 / 1e9)
    );

    // Exactness: int32 accumulators against the file's own trits.
    let mut rng = Rng::new(11);
    for t in &tensors {
        let x: Vec<i8> = (0..t.m.cols())
            .map(|_| ((rng.uniform() * 255.0) as i32 - 127) as i8)
            .collect();
        let mut y = vec![0i32; t.m.rows()];
        gemv_i8(&t.m, &x, &mut y).unwrap();
        let want: Vec<i32> = t
            .file_trits
            .chunks_exact(t.m.cols())
            .map(|row| row.iter().zip(&x).map(|(&a, &b)| a as i32 * b as i32).sum())
            .collect();
        assert_eq!(
            y, want,
            "{}: GEMV differs from the file's dequantized weights",
            t.name
        );
    }
    println!("exact: every tensor's int32 GEMV equals the dequantize-then-multiply reference");

    // Timing. Warm: one tensor again and again. Cold: every tensor once, in file order.
    let xs: Vec<Vec<f32>> = tensors
        .iter()
        .map(|t| (0..t.m.cols()).map(|_| rng.normal()).collect())
        .collect();
    let mut ys: Vec<Vec<f32>> = tensors.iter().map(|t| vec![0.0; t.m.rows()]).collect();
    let warm: Vec<f64> = tensors
        .iter()
        .zip(&xs)
        .zip(ys.iter_mut())
        .map(|((t, x), y)| median_time(20, || ternary_gemv(&t.m, x, y).unwrap()))
        .collect();
    let mut passes: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            for ((t, x), y) in tensors.iter().zip(&xs).zip(ys.iter_mut()) {
                ternary_gemv(&t.m, x, y).unwrap();
            }
            t0.elapsed().as_secs_f64()
        })
        .collect();
    let token = median(&mut passes);

    // fp16 baseline on the first block's tensors (by name prefix up to the second dot).
    let block = |n: &str| n.split('.').take(2).collect::<Vec<_>>().join(".");
    let first = block(&tensors[0].name);
    let idx: Vec<usize> = (0..tensors.len())
        .filter(|&i| block(&tensors[i].name) == first)
        .collect();
    let dense: Vec<DenseMatrix<u16>> = idx
        .iter()
        .map(|&i| {
            let t = &tensors[i];
            // Each row's own scale (one scale or per-row, as the file had it).
            let (cols, scales) = (t.m.cols(), t.m.scales());
            let w: Vec<f32> = t
                .file_trits
                .iter()
                .enumerate()
                .map(|(j, &v)| v as f32 * scales.row(j / cols))
                .collect();
            DenseMatrix::from_f32(&w, t.m.rows(), t.m.cols())
        })
        .collect();
    let mut fp16_warm = Vec::new();
    for (d, &i) in dense.iter().zip(&idx) {
        let mut y = vec![0.0; d.rows()];
        fp16_warm.push(median_time(10, || d.gemv(&xs[i], &mut y)));
    }
    let mut fp16_passes: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            for (d, &i) in dense.iter().zip(&idx) {
                d.gemv(&xs[i], &mut ys[i]);
            }
            t0.elapsed().as_secs_f64()
        })
        .collect();
    let block_weights: usize = idx
        .iter()
        .map(|&i| tensors[i].m.rows() * tensors[i].m.cols())
        .sum();
    let fp16_token = median(&mut fp16_passes) * weights as f64 / block_weights as f64;

    println!(
        "\n{:<34} {:>11} {:>10} {:>10} {:>10}",
        "tensor (first block)", "shape", "warm us", "fp16 us", "speed-up"
    );
    for (k, &i) in idx.iter().enumerate() {
        let t = &tensors[i];
        println!(
            "{:<34} {:>11} {:>10.1} {:>10.1} {:>9.2}x",
            t.name,
            format!("{}x{}", t.m.rows(), t.m.cols()),
            warm[i] * 1e6,
            fp16_warm[k] * 1e6,
            fp16_warm[k] / warm[i]
        );
    }
    let warm_sum: f64 = warm.iter().sum();
    println!(
        "\nall {} linear layers, one token: cold {:.2} ms ({:.0} tokens/s bound), warm sum {:.2} ms; \
         fp16 (first block, scaled x{:.1}) cold {:.2} ms ({:.1} tokens/s): {:.2}x",
        tensors.len(), token * 1e3, 1.0 / token, warm_sum * 1e3,
        weights as f64 / block_weights as f64, fp16_token * 1e3, 1.0 / fp16_token, fp16_token / token
    );
    println!(
        "weights read a token: {:.1} MB packed -> {:.1} GB/s effective",
        tensors
            .iter()
            .map(|t| t.m.packed_bytes().len())
            .sum::<usize>() as f64
            / 1e6,
        tensors
            .iter()
            .map(|t| t.m.packed_bytes().len())
            .sum::<usize>() as f64
            / 1e9
            / token
    );

    // Container: save, then open (mapped, checksum + validation, no copy).
    let cpath = tmp.join("model.bnk");
    let t0 = Instant::now();
    container::save_to_path(&cpath, tensors.iter().map(|t| (t.name.as_str(), &t.m))).unwrap();
    let save_s = t0.elapsed().as_secs_f64();
    let size = std::fs::metadata(&cpath).unwrap().len() as f64;
    let mut loads: Vec<f64> = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            // SAFETY: nothing else writes the file this program just saved while it is mapped.
            let c = unsafe { Container::map(&cpath) }.unwrap();
            let s = t0.elapsed().as_secs_f64();
            assert_eq!(c.len(), tensors.len());
            s
        })
        .collect();
    let load_s = median(&mut loads);
    let bytes = std::fs::read(&cpath).unwrap();
    let mut sums: Vec<f64> = (0..3)
        .map(|_| {
            bitnet_bench::stats::time(|| {
                std::hint::black_box(container::checksum(&bytes));
            })
        })
        .collect();
    let sum_s = median(&mut sums);
    println!(
        "container: {:.1} MB, save {:.2} s; open (mmap, checksum, validate, no copy) {:.1} ms = {:.2} GB/s; \
         of which the XXH3 checksum alone {:.1} ms = {:.1} GB/s",
        size / 1e6, save_s, load_s * 1e3, size / 1e9 / load_s, sum_s * 1e3, size / 1e9 / sum_s
    );
    if !keep {
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
