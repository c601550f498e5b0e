#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

#[test]
fn every_private_or_special_ipv4_range_is_refused() {
    let refused = [
        ("0.0.0.0", Range::Unspecified),
        ("0.1.2.3", Range::Unspecified),
        ("10.0.0.1", Range::Private),
        ("10.255.255.255", Range::Private),
        ("172.16.0.1", Range::Private),
        ("172.31.255.254", Range::Private),
        ("192.168.1.1", Range::Private),
        ("100.64.0.1", Range::Shared),
        ("100.127.255.254", Range::Shared),
        ("127.0.0.1", Range::Loopback),
        ("127.1.2.3", Range::Loopback),
        ("169.254.169.254", Range::LinkLocal),
        ("192.0.0.8", Range::Reserved),
        ("192.0.2.1", Range::Documentation),
        ("198.51.100.7", Range::Documentation),
        ("203.0.113.9", Range::Documentation),
        ("198.18.0.1", Range::Benchmarking),
        ("198.19.255.1", Range::Benchmarking),
        ("192.88.99.1", Range::Reserved),
        ("224.0.0.1", Range::Multicast),
        ("239.255.255.250", Range::Multicast),
        ("240.0.0.1", Range::Reserved),
        ("255.255.255.255", Range::Reserved),
    ];
    for (ip, range) in refused {
        assert_eq!(check_ip(v4(ip), false), Err(range), "{ip}");
    }
    // The neighbours of each range are public.
    for ip in [
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "128.0.0.1",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "93.184.216.34",
    ] {
        assert_eq!(check_ip(v4(ip), false), Ok(()), "{ip}");
    }
}

#[test]
fn every_private_or_special_ipv6_range_and_embedded_form_is_refused() {
    let refused = [
        ("::", Range::Unspecified),
        ("::1", Range::Loopback),
        ("fc00::1", Range::UniqueLocal),
        ("fd12:3456::1", Range::UniqueLocal),
        ("fe80::1", Range::LinkLocal),
        ("febf::1", Range::LinkLocal),
        ("fec0::1", Range::SiteLocal),
        ("ff02::1", Range::Multicast),
        ("2001:db8::1", Range::Documentation),
        ("3fff:fff::1", Range::Documentation),
        ("2001:2::1", Range::Benchmarking),
        ("2001:0:4136:e378::1", Range::Translated),
        ("64:ff9b:1::a00:1", Range::Translated),
        ("100::1", Range::Reserved),
        ("::a00:1", Range::Reserved),
        ("::ffff:0:a00:1", Range::Reserved),
        ("4000::1", Range::Reserved),
        // IPv4-mapped, NAT64 and 6to4 forms of refused IPv4 addresses.
        ("::ffff:127.0.0.1", Range::Loopback),
        ("::ffff:10.0.0.1", Range::Private),
        ("::ffff:169.254.169.254", Range::LinkLocal),
        ("::ffff:100.64.0.1", Range::Shared),
        ("::ffff:0.0.0.0", Range::Unspecified),
        ("64:ff9b::10.0.0.1", Range::Private),
        ("64:ff9b::127.0.0.1", Range::Loopback),
        ("2002:a9fe:a9fe::1", Range::LinkLocal),
        ("2002:c0a8:0101::1", Range::Private),
    ];
    for (ip, range) in refused {
        assert_eq!(check_ip(v6(ip), false), Err(range), "{ip}");
    }
    for ip in [
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::1",
        "3fff:1000::1",
    ] {
        assert_eq!(check_ip(v6(ip), false), Ok(()), "{ip}");
    }
}

#[test]
fn allowing_loopback_allows_nothing_else() {
    for ip in [
        v4("127.0.0.1"),
        v4("127.9.9.9"),
        v6("::1"),
        v6("::ffff:127.0.0.1"),
    ] {
        assert_eq!(check_ip(ip, true), Ok(()), "{ip}");
    }
    for (ip, range) in [
        (v4("10.0.0.1"), Range::Private),
        (v4("169.254.169.254"), Range::LinkLocal),
        (v4("0.0.0.0"), Range::Unspecified),
        (v6("::"), Range::Unspecified),
        (v6("fe80::1"), Range::LinkLocal),
        (v6("::ffff:192.168.0.1"), Range::Private),
    ] {
        assert_eq!(check_ip(ip, true), Err(range), "{ip}");
    }
}

#[test]
fn the_url_parser_normalises_numeric_hosts_before_the_check() {
    // Decimal, hexadecimal and short forms of 127.0.0.1 are the same address to the parser,
    // so they meet the same check.
    for link in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://[::ffff:7f00:1]/",
    ] {
        let url = Url::parse(link).unwrap();
        let ip = match url.host().unwrap() {
            Host::Ipv4(ip) => IpAddr::V4(ip),
            Host::Ipv6(ip) => IpAddr::V6(ip),
            Host::Domain(d) => panic!("{link} read as a name: {d}"),
        };
        assert_eq!(check_ip(ip, false), Err(Range::Loopback), "{link}");
    }
}

#[test]
fn open_graph_is_preferred_and_entities_are_decoded() {
    let page = r#"<!doctype html><html><head>
        <title>Plain &amp; simple</title>
        <meta property="og:title" content="Caf&eacute; &#x26; cr&#232;me">
        <meta name="description" content="The plain description">
        <meta property="og:description" content="R&eacute;sum&eacute; &lt;b&gt;not bold&lt;/b&gt;">
        <meta property="og:site_name" content="Example &quot;News&quot;">
        </head><body><p>Text</p></body></html>"#;
    let meta = extract(page);
    assert_eq!(meta.title, "Café & crème");
    assert_eq!(meta.description, "Résumé <b>not bold</b>");
    assert_eq!(meta.site_name, "Example \"News\"");
}

#[test]
fn missing_tags_fall_back_or_stay_empty() {
    let meta = extract("<title>Only &lt;a&gt; title</title><p>x</p>");
    assert_eq!(meta.title, "Only <a> title");
    assert_eq!(meta.description, "");
    assert_eq!(meta.site_name, "");
    let meta = extract(
        r#"<meta name="Description" content="named"><meta name="twitter:title" content="tw">"#,
    );
    assert_eq!(meta.title, "tw");
    assert_eq!(meta.description, "named");
    assert_eq!(extract(""), PageMeta::default());
    assert_eq!(extract("just text, no markup"), PageMeta::default());
    // Only the first title and the first of each meta count.
    let meta = extract(
        r#"<title>first</title><title>second</title>
        <meta property="og:site_name" content="one"><meta property="og:site_name" content="two">"#,
    );
    assert_eq!(
        (meta.title.as_str(), meta.site_name.as_str()),
        ("first", "one")
    );
}

#[test]
fn scripts_styles_and_comments_are_not_read_as_tags() {
    let page = r#"<head>
        <script>var s = '<title>from script</title><meta property="og:title" content="x">';</script>
        <style>/* <meta property="og:description" content="from style"> */</style>
        <!-- <meta property="og:site_name" content="from comment"> -->
        <noscript><meta property="og:site_name" content="from noscript"></noscript>
        <title>The <b>real</b> title</title>
        </head>"#;
    let meta = extract(page);
    // A title is text only: markup inside it is its text.
    assert_eq!(meta.title, "The <b>real</b> title");
    assert_eq!(meta.description, "");
    assert_eq!(meta.site_name, "");
}

#[test]
fn a_cut_page_gives_what_came_before_the_cut() {
    let mut page =
        String::from(r#"<title>Kept</title><meta property="og:description" content="also kept">"#);
    page.push_str(&"<p>filler</p>".repeat(100_000));
    let cut = &page[..MAX_PAGE_BYTES];
    let meta = extract(cut);
    assert_eq!(meta.title, "Kept");
    assert_eq!(meta.description, "also kept");
    // Cut inside an attribute: nothing half-read is kept.
    let meta = extract(r#"<title>t</title><meta property="og:site_name" content="unfinis"#);
    assert_eq!(meta.site_name, "");
    // An unclosed title is read to the end of what came (the standard's rule), then cut.
    let long = format!("<title>{}", "a".repeat(1 << 20));
    let card = LinkCard::new("http://x/", &extract(&long).title, "", "");
    assert_eq!(card.title.len(), LinkCard::MAX_TITLE);
}

#[test]
fn texts_are_cleaned_and_bounded_on_a_character_boundary() {
    let title = format!("  A\u{202e}b\u{0007}c \n\t d {}", "é".repeat(400));
    let card = LinkCard::new(
        "https://example.org/",
        &title,
        &"x".repeat(5000),
        "s\u{0}ite",
    );
    assert!(card.title.starts_with("Abc d é"));
    assert!(card.title.len() <= LinkCard::MAX_TITLE);
    assert!(card.title.len() > LinkCard::MAX_TITLE - 2);
    assert_eq!(card.description.len(), LinkCard::MAX_DESCRIPTION);
    assert_eq!(card.site_name, "site");
}

#[test]
fn the_charset_comes_from_the_bom_the_header_or_the_page() {
    // "café" in windows-1252.
    let latin = b"<title>caf\xe9</title>";
    assert_eq!(
        extract(&decode(latin, "text/html; charset=windows-1252")).title,
        "café"
    );
    assert_eq!(
        extract(&decode(latin, "text/html; charset=\"ISO-8859-1\"")).title,
        "café"
    );
    let declared = b"<meta charset=\"iso-8859-1\"><title>caf\xe9</title>";
    assert_eq!(extract(&decode(declared, "text/html")).title, "café");
    let declared = b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"><title>caf\xe9</title>";
    assert_eq!(extract(&decode(declared, "text/html")).title, "café");
    // UTF-8 by default; a malformed byte becomes U+FFFD, never an error.
    assert_eq!(
        extract(&decode("<title>café</title>".as_bytes(), "text/html")).title,
        "café"
    );
    assert_eq!(extract(&decode(latin, "text/html")).title, "caf\u{fffd}");
    // A byte-order mark wins over the label.
    let bom = [b"\xef\xbb\xbf".as_slice(), "<title>café</title>".as_bytes()].concat();
    assert_eq!(
        extract(&decode(&bom, "text/html; charset=windows-1252")).title,
        "café"
    );
}

#[test]
fn a_post_keeps_only_a_card_for_its_link() {
    let card = LinkCard::new("https://a.example/", "A", "", "");
    let mut post = PostContent {
        link: Some("https://b.example/".into()),
        card: Some(card.clone()),
        ..PostContent::default()
    };
    assert_eq!(post.card_for_link(), None);
    assert_eq!(wanted(&mut post), Some("https://b.example/".into()));
    assert_eq!(post.card, None, "the stale card is dropped");
    let mut post = PostContent {
        link: Some("https://a.example/".into()),
        card: Some(card.clone()),
        ..PostContent::default()
    };
    assert_eq!(wanted(&mut post), None, "it has its card");
    assert_eq!(post.card, Some(card.clone()));
    let mut post = PostContent {
        card: Some(card),
        ..PostContent::default()
    };
    assert_eq!(wanted(&mut post), None, "no link, nothing to fetch");
    assert_eq!(post.card, None);
}

#[tokio::test]
async fn links_that_are_not_http_are_not_fetched() {
    let settings = LinkCards::default();
    for link in ["ftp://example.org/", "file:///etc/passwd", "gopher://x/"] {
        assert!(
            matches!(fetch(link, &settings).await, Err(CardError::Scheme(_))),
            "{link}"
        );
    }
    assert!(matches!(
        fetch("not a url", &settings).await,
        Err(CardError::Url(_))
    ));
    let long = format!("https://example.org/{}", "a".repeat(LinkCard::MAX_URL));
    assert!(matches!(
        fetch(&long, &settings).await,
        Err(CardError::Url(_))
    ));
    // Refused before any connection: no server needed.
    for (link, range) in [
        ("http://127.0.0.1:9/", Range::Loopback),
        ("http://[::1]:9/", Range::Loopback),
        ("http://localhost:9/", Range::Loopback),
        ("http://0.0.0.0:9/", Range::Unspecified),
        ("http://[::ffff:169.254.169.254]/", Range::LinkLocal),
    ] {
        match fetch(link, &settings).await {
            Err(CardError::Refused { range: r, .. }) => assert_eq!(r, range, "{link}"),
            other => panic!("{link}: {other:?}"),
        }
    }
}
