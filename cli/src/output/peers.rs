//! Peers, the node's state, and files of entries on screen.

use agora_node::http::ops::{Export, Exported, Import, Imported, NodeStatus, Peer, Peers, Status};
use agora_node::net::DataUse;

use super::{Render, age, line, now, plural, table, truncate};

impl Render for Peers {
    fn render(&self, peers: &Vec<Peer>) -> String {
        if peers.is_empty() {
            return "No peers connected.\n".into();
        }
        let mut rows = vec![vec![
            "PEER".to_owned(),
            "PATH".to_owned(),
            "ADDRESS".to_owned(),
        ]];
        for p in peers {
            let addrs: Vec<String> = p.addresses.iter().map(ToString::to_string).collect();
            rows.push(vec![p.peer_id.to_string(), p.path.clone(), addrs.join(" ")]);
        }
        table(rows)
    }
}

impl Render for Status {
    fn render(&self, v: &NodeStatus) -> String {
        let now = now();
        let mut out = if v.running {
            format!("node running, {}\n", plural(v.peers, "peer", "peers"))
        } else {
            "node not running (agora up)\n".to_owned()
        };
        if let Some(net) = &v.network {
            out.push_str(&format!("reachable: {}\n", net.reachability.describe()));
            for relay in &net.relays {
                out.push_str(&format!("relay: {relay}\n"));
            }
            if net.hole_punches_succeeded + net.hole_punches_failed > 0 {
                out.push_str(&format!(
                    "hole punching: {} succeeded, {} failed\n",
                    net.hole_punches_succeeded, net.hole_punches_failed
                ));
            }
        }
        if let Some(data) = &v.data {
            out.push_str(&data_line(data));
        }
        let mut rows = vec![vec![
            "SUBWIKI".to_owned(),
            "NAME".to_owned(),
            "ENTRIES".to_owned(),
            "SYNCS".to_owned(),
            "LAST SYNC".to_owned(),
            "CATCHING UP".to_owned(),
        ]];
        for sw in &v.subwikis {
            let catch_up = sw.catch_up.map_or_else(
                || "-".to_owned(),
                |c| {
                    let found = if c.reconciling {
                        " (still comparing)"
                    } else {
                        ""
                    };
                    format!(
                        "{} fetched, {} to go{found}, {}",
                        c.fetched,
                        c.remaining,
                        plural(c.peers as usize, "peer", "peers")
                    )
                },
            );
            rows.push(vec![
                sw.id.to_string(),
                truncate(&line(sw.name.as_deref().unwrap_or("?")), 30),
                sw.entries.to_string(),
                sw.syncs.to_string(),
                sw.last_sync
                    .map_or_else(|| "never".to_owned(), |t| age(t, now)),
                catch_up,
            ]);
        }
        out.push_str(&table(rows));
        for d in &v.damaged {
            let then = if d.joined {
                "fetching them again from peers"
            } else {
                "not joined: join it again to fetch them"
            };
            out.push_str(&format!(
                "STORE DAMAGED: {}: {} of {} entries lost; {then}\n",
                d.subwiki,
                d.missing(),
                d.expected
            ));
        }
        out
    }
}

/// Bytes for people: `512 B`, `3.4 KiB`, `12.0 MiB`, `1.5 GiB`.
fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    // Display only: a float is precise enough for one decimal.
    let mut value = n as f64;
    let mut unit = "B";
    for u in ["KiB", "MiB", "GiB"] {
        value /= 1024.0;
        unit = u;
        if value < 1024.0 {
            break;
        }
    }
    format!("{value:.1} {unit}")
}

/// The day's network use and the data budget, one line.
fn data_line(d: &DataUse) -> String {
    let mut out = format!(
        "data today (UTC): {} received, {} sent",
        bytes(d.received),
        bytes(d.sent)
    );
    if let Some(cap) = d.daily_cap {
        let used = d.received.saturating_add(d.sent);
        out.push_str(&format!(", {} of {} a day", bytes(used), bytes(cap)));
        if d.exhausted {
            out.push_str("; budget used up: offline until midnight UTC");
        } else if d.catch_up_paused {
            out.push_str("; catch-up paused until midnight UTC, new posts still arrive");
        }
    }
    out.push('\n');
    out
}

impl Render for Export {
    fn render(&self, v: &Exported) -> String {
        format!(
            "Wrote {} entries of {} to {}\n",
            v.entries,
            v.id,
            v.file.display()
        )
    }
}

impl Render for Import {
    fn render(&self, v: &Imported) -> String {
        format!(
            "Imported {}: {} new entries, {} already held\n",
            v.id, v.new, v.duplicates
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_days_data_reads_with_its_budget() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        let mut d = DataUse {
            day: 20_000,
            received: 60 << 20,
            sent: 22 << 20,
            daily_cap: None,
            catch_up_paused: false,
            exhausted: false,
        };
        assert_eq!(
            data_line(&d),
            "data today (UTC): 60.0 MiB received, 22.0 MiB sent\n"
        );
        d.daily_cap = Some(100 << 20);
        d.catch_up_paused = true;
        assert_eq!(
            data_line(&d),
            "data today (UTC): 60.0 MiB received, 22.0 MiB sent, 82.0 MiB of 100.0 MiB a day; \
             catch-up paused until midnight UTC, new posts still arrive\n"
        );
        d.exhausted = true;
        assert!(data_line(&d).ends_with("budget used up: offline until midnight UTC\n"));
    }
}
