//! What a report says about the machine it ran on: CPU model and features, kernel sets,
//! and the date.

use crate::registry;

/// The CPU's model name (`/proc/cpuinfo` on Linux), else `unknown (<arch>)`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| format!("unknown ({})", std::env::consts::ARCH))
}

/// The CPU features the kernels and baselines care about, as detected at run time.
pub fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        for (name, yes) in [
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("f16c", has!("f16c")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vl", has!("avx512vl")),
            ("avx512vnni", has!("avx512vnni")),
            ("avx512vbmi", has!("avx512vbmi")),
            ("avxvnni", has!("avxvnni")),
        ] {
            if yes {
                v.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        for (name, yes) in [("neon", has!("neon")), ("dotprod", has!("dotprod"))] {
            if yes {
                v.push(name);
            }
        }
    }
    v
}

/// The kernel sets this CPU can run, best first.
pub fn kernels_available() -> Vec<&'static str> {
    registry::available_names()
}

/// The kernel set the library's calls use, or the error `BITNET_KERNEL` caused.
pub fn kernel_chosen() -> String {
    registry::active_name()
}

/// `2026-11-23 10:49 UTC`, from the system clock (civil-from-days, no time-zone database).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    utc_from_unix(secs)
}

fn utc_from_unix(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::utc_from_unix(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_from_unix(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(super::utc_from_unix(1_795_000_000), "2026-11-18 11:06 UTC");
    }
}
