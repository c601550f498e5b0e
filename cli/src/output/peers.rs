//! Peers, the node's state, and files of entries on screen.

use agora_node::http::ops::{Export, Exported, Import, Imported, NodeStatus, Peer, Peers, Status};

use super::{Render, age, line, now, plural, table, truncate};

impl Render for Peers {
    fn render(&self, peers: &Vec<Peer>) -> String {
        if peers.is_empty() {
            return "No peers connected.\n".into();
        }
        let mut rows = vec![vec!["PEER".to_owned(), "ADDRESS".to_owned()]];
        for p in peers {
            let addrs: Vec<String> = p.addresses.iter().map(ToString::to_string).collect();
            rows.push(vec![p.peer_id.to_string(), addrs.join(" ")]);
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
