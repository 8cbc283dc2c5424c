//! The DNS service against a real authoritative server (knot) with the fixture zones.

use qpsmtpd_core::dns::{Answer, Dns, DnsError, DnsSettings, Mx, Query};
use qpsmtpd_core::testing::{DnsServer, Harness};
use qpsmtpd_core::{Context, Hook, Plugin, Registration, Verdict};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn dns_for(server: &DnsServer) -> Dns {
    Dns::new(&DnsSettings {
        servers: vec![server.addr()],
        timeout: Duration::from_secs(2),
    })
    .unwrap()
}

#[test]
fn answers_from_the_fixture_zones() {
    let server = DnsServer::start();
    let dns = dns_for(&server);
    let t = Duration::from_secs(2);
    assert_eq!(
        dns.lookup(&Query::A("example.test".into()), t),
        Ok(Answer::Addrs(vec!["127.0.0.1".parse().unwrap()]))
    );
    assert_eq!(
        dns.lookup(&Query::Mx("example.test".into()), t),
        Ok(Answer::Mx(vec![Mx {
            preference: 10,
            exchange: "mx.example.test".into()
        }]))
    );
    // A long TXT record comes back as one string, its parts joined.
    let dkim = dns
        .lookup(&Query::Txt("rsa._domainkey.example.test".into()), t)
        .unwrap();
    assert!(
        dkim.texts()[0].starts_with("v=DKIM1; k=rsa; p=MIIB"),
        "{dkim:?}"
    );
    assert!(!dkim.texts()[0].contains('"'));
    assert_eq!(
        dns.lookup(&Query::A("nothere.example.test".into()), t),
        Err(DnsError::NotFound)
    );
    // Out of the server's zones: REFUSED, which counts as not found.
    assert_eq!(
        dns.lookup(&Query::A("example.org".into()), t),
        Err(DnsError::NotFound)
    );
}

/// Starts lookups at connect and reads them at RCPT, as dnsbl does.
struct Early(Arc<Mutex<Vec<String>>>);
#[derive(Default)]
struct Started(Option<qpsmtpd_core::context::Lookups>);
impl Plugin for Early {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Connect.into(), Hook::Rcpt.into()]
    }
    fn connect(&self, cx: &mut Context<'_>) -> Verdict {
        let lookups = cx.start_lookups(
            vec![
                Query::A("example.test".into()),
                Query::Txt("example.test".into()),
            ],
            None,
        );
        cx.state::<Started>().0 = Some(lookups);
        Verdict::Declined
    }
    fn rcpt(
        &self,
        cx: &mut Context<'_>,
        _: &qpsmtpd_core::Address,
        _: &qpsmtpd_core::Params,
    ) -> Verdict {
        let lookups = cx.state::<Started>().0.take().unwrap();
        let answers = cx.collect_lookups(lookups);
        self.0
            .lock()
            .unwrap()
            .extend(answers.iter().map(|a| format!("{a:?}")));
        // A second ask is answered from the session's cache.
        let again = cx.resolve(&Query::A("example.test".into()));
        assert!(again.is_ok());
        Verdict::ok()
    }
}

#[test]
fn lookups_started_early_are_collected_later() {
    let dns = DnsServer::start();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = Harness::new()
        .dns(&dns)
        .plugin("early", Early(seen.clone()))
        .build()
        .unwrap();
    let mut s = server.session();
    s.connect();
    s.command("EHLO c");
    s.command("MAIL FROM:<a@example.test>");
    assert!(s.command("RCPT TO:<b@example.test>").starts_with("250 "));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].contains("127.0.0.1"), "{seen:?}");
    assert!(seen[1].contains("v=spf1"), "{seen:?}");
}

#[test]
fn concurrent_lookups_cost_the_slowest_not_the_sum() {
    // A server that never answers: ten queries with a 300 ms deadline each.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let dns = Dns::new(&DnsSettings {
        servers: vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))],
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let queries: Vec<Query> = (0..10)
        .map(|i| Query::A(format!("n{i}.example.test")))
        .collect();
    let started = Instant::now();
    let answers = dns.lookup_all(&queries, Duration::from_millis(300));
    let took = started.elapsed();
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_err_and(|e| e.is_temporary())),
        "{answers:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "ten timeouts took {took:?}"
    );
}
