use qpsmtpd_core::testing::Harness;
use qpsmtpd_core::{Context, Hook, Plugin, Registration, Verdict};

struct AcceptAll;
impl Plugin for AcceptAll {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Rcpt.into(), Hook::Queue.into()]
    }
    fn rcpt(&self, _: &mut Context<'_>, _: &qpsmtpd_core::Address, _: &qpsmtpd_core::Params) -> Verdict {
        Verdict::ok()
    }
    fn queue(&self, cx: &mut Context<'_>) -> Verdict {
        let mut out = Vec::new();
        cx.transaction_mut().write_message(&mut out).unwrap();
        Verdict::ok_with(format!("Queued {} bytes", out.len()))
    }
}

#[test]
fn smoke() {
    let server = Harness::new().plugin("accept", AcceptAll).build().unwrap();
    let mut s = server.session();
    println!("{}", s.connect());
    println!("{}", s.command("EHLO client.example"));
    println!("{}", s.mail("a@b.example", &["c@d.example"], "Subject: hi\r\n\r\nhello"));
    println!("{}", s.command("QUIT"));
}
