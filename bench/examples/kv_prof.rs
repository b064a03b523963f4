use bitnet_kernels::kv::KvCache;
fn main() {
    let (hq, hk, d, t) = (20, 5, 128, 4096);
    let mut s = 1u64;
    let mut r = |n: usize| -> Vec<f32> { (0..n).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; ((s >> 40) as f32 / 16777216.0) - 0.5 }).collect() };
    let k = r(t * hk * d); let v = r(t * hk * d); let q = r(hq * d);
    let mut c = KvCache::new(hk, d, t, 1).unwrap();
    c.append(&k, &v, t).unwrap();
    let mut out = vec![0.0; hq * d];
    let reps: usize = std::env::args().nth(1).map(|x| x.parse().unwrap()).unwrap_or(3);
    for _ in 0..reps { c.attend(&q, hq, &mut out).unwrap(); }
    println!("{}", out[0]);
}
