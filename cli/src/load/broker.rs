//! `--broker-redis`: the Redis server a cluster of hub nodes (or of Socket.IO processes
//! with its Redis adapter) shares, measured by its own `INFO` when publishing starts and
//! when the drain ends (every publication's broker work, none of the setup's): its CPU
//! time (`used_cpu_sys` + `used_cpu_user`, every
//! thread of the server) and the commands it ran (`total_commands_processed`, and
//! `commandstats` per command). Redis counts a command a Lua script runs as well as the
//! `EVALSHA` that ran it, so the per-command calls tell client requests (`evalsha`,
//! a direct `publish`) from the work inside a script.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

/// How long connecting to or asking the broker may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// One reading of the broker's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RedisInfo {
    /// `used_cpu_sys` + `used_cpu_user`.
    pub(crate) cpu: Duration,
    /// `total_commands_processed`.
    pub(crate) commands: u64,
    /// `cmdstat_<name>:calls=N` per command (subcommands as Redis names them, `a|b`).
    pub(crate) calls: BTreeMap<String, u64>,
}

/// A connection to the broker that reads its `INFO`.
pub(crate) struct RedisProbe {
    url: String,
    connection: redis::Connection,
}

impl std::fmt::Debug for RedisProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProbe")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RedisProbe {
    /// Connects to `url` (`redis://HOST:PORT`), bounded by a few seconds.
    pub(crate) fn connect(url: &str) -> io::Result<Self> {
        let fail = |e: redis::RedisError| io::Error::other(format!("--broker-redis {url}: {e}"));
        let client = redis::Client::open(url).map_err(fail)?;
        let connection = client.get_connection_with_timeout(TIMEOUT).map_err(fail)?;
        connection.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
        connection.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
        Ok(Self {
            url: url.to_owned(),
            connection,
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The broker's counters now.
    pub(crate) fn sample(&mut self) -> io::Result<RedisInfo> {
        let text: String = redis::cmd("INFO")
            .arg("cpu")
            .arg("stats")
            .arg("commandstats")
            .query(&mut self.connection)
            .map_err(|e| io::Error::other(format!("--broker-redis {}: INFO: {e}", self.url)))?;
        parse_info(&text).ok_or_else(|| {
            io::Error::other(format!(
                "--broker-redis {}: INFO without used_cpu_* or total_commands_processed",
                self.url
            ))
        })
    }
}

/// The counters in an `INFO` answer; `None` when the CPU or command totals are missing.
pub(crate) fn parse_info(text: &str) -> Option<RedisInfo> {
    let mut info = RedisInfo::default();
    let (mut sys, mut user, mut total) = (None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        match key {
            "used_cpu_sys" => sys = value.parse::<f64>().ok(),
            "used_cpu_user" => user = value.parse::<f64>().ok(),
            "total_commands_processed" => total = value.parse::<u64>().ok(),
            _ => {
                if let Some(name) = key.strip_prefix("cmdstat_") {
                    let calls = value
                        .split(',')
                        .find_map(|field| field.strip_prefix("calls="))
                        .and_then(|n| n.parse::<u64>().ok());
                    if let Some(calls) = calls {
                        info.calls.insert(name.to_owned(), calls);
                    }
                }
            }
        }
    }
    info.cpu = Duration::try_from_secs_f64(sys? + user?).ok()?;
    info.commands = total?;
    Some(info)
}

/// The broker's figures over a span: `end` minus `start`, without the probe's own
/// `INFO` (one call, at the start).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BrokerStats {
    pub(crate) url: String,
    /// Between the two readings.
    pub(crate) span: Duration,
    pub(crate) cpu: Duration,
    pub(crate) commands: u64,
    /// Calls per command in the window, most first (commands with none left out).
    pub(crate) calls: Vec<(String, u64)>,
}

impl BrokerStats {
    pub(crate) fn between(url: &str, start: &RedisInfo, end: &RedisInfo, span: Duration) -> Self {
        let probe = |name: &str| u64::from(name == "info");
        let mut calls: Vec<(String, u64)> = end
            .calls
            .iter()
            .map(|(name, &n)| {
                let before = start.calls.get(name).copied().unwrap_or(0);
                (name.clone(), n.saturating_sub(before + probe(name)))
            })
            .filter(|&(_, n)| n > 0)
            .collect();
        calls.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Self {
            url: url.to_owned(),
            span,
            cpu: end.cpu.saturating_sub(start.cpu),
            commands: end.commands.saturating_sub(start.commands + 1),
            calls,
        }
    }

    /// CPU time over the span, in percent of one core.
    pub(crate) fn cpu_percent(&self) -> f64 {
        let span = self.span.as_secs_f64();
        if span > 0.0 {
            100.0 * self.cpu.as_secs_f64() / span
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO_7_0: &str = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\n\
        used_cpu_sys_children:0.000000\r\n\r\n# Stats\r\ntotal_connections_received:3\r\n\
        total_commands_processed:105\r\n\r\n# Commandstats\r\n\
        cmdstat_evalsha:calls=40,usec=900,usec_per_call=22.50,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_publish:calls=40,usec=80,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_info:calls=2,usec=48,usec_per_call=24.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_client|setinfo:calls=1,usec=1,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n";

    #[test]
    fn info_is_read_by_field() {
        let info = parse_info(INFO_7_0).unwrap();
        assert_eq!(info.cpu, Duration::from_millis(3750));
        assert_eq!(info.commands, 105);
        assert_eq!(info.calls["evalsha"], 40);
        assert_eq!(info.calls["client|setinfo"], 1);
        assert_eq!(info.calls.len(), 4);
        assert_eq!(parse_info("# CPU\r\nused_cpu_sys:1.0\r\n"), None);
    }

    #[test]
    fn the_window_is_the_difference_without_the_probe() {
        let start = parse_info(INFO_7_0).unwrap();
        let mut end = start.clone();
        end.cpu += Duration::from_millis(500);
        end.commands += 31; // 10 evalsha + 20 publish inside them + the first INFO
        *end.calls.get_mut("evalsha").unwrap() += 10;
        *end.calls.get_mut("publish").unwrap() += 20;
        *end.calls.get_mut("info").unwrap() += 1;
        end.calls.insert("hincrby".into(), 10);
        let stats = BrokerStats::between("redis://x", &start, &end, Duration::from_secs(2));
        assert_eq!(stats.cpu, Duration::from_millis(500));
        assert_eq!(stats.cpu_percent(), 25.0);
        assert_eq!(stats.commands, 30);
        assert_eq!(
            stats.calls,
            vec![
                ("publish".into(), 20),
                ("evalsha".into(), 10),
                ("hincrby".into(), 10)
            ]
        );
    }
}
