//! Post bodies: Markdown rendered with pulldown-cmark, then sanitised with ammonia's allow-list.
//!
//! A body is data written by anyone in the subwiki, so the HTML it becomes must not run script
//! or load anything in the UI's origin: ammonia keeps only harmless tags and attributes, links
//! only to `http`, `https` and `mailto` (opened with `rel="noopener noreferrer nofollow"`), and
//! no images (a post's images are its blobs, served by the node itself; an `<img>` pointing
//! elsewhere would make the reader's browser contact that site).

use std::collections::HashSet;

use pulldown_cmark::{Options, Parser, html};

/// Renders a post body to sanitised HTML.
pub fn render(body: &str) -> String {
    let mut raw = String::with_capacity(body.len() * 3 / 2);
    let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
    html::push_html(&mut raw, Parser::new_ext(body, options));
    let schemes: HashSet<&str> = ["http", "https", "mailto"].into_iter().collect();
    let mut tags = ammonia::Builder::default().clone_tags();
    tags.remove("img");
    ammonia::Builder::default()
        .tags(tags)
        .url_schemes(schemes)
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&raw)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_anything_active_is_removed() {
        let html = render("# Title\n\nSome *text* and [a link](https://example.org).");
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<em>text</em>"));
        assert!(html.contains("href=\"https://example.org\""));
        assert!(html.contains("noopener"));
        for hostile in [
            "<script>alert(1)</script>",
            "[x](javascript:alert(1))",
            "<img src=x onerror=alert(1)>",
            "![tracker](https://tracker.example/pixel.png)",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<div onclick=\"alert(1)\">x</div>",
            "<style>body{display:none}</style>",
        ] {
            let html = render(hostile);
            for bad in [
                "<script",
                "javascript:",
                "onerror",
                "<img",
                "data:",
                "<iframe",
                "onclick",
                "<style",
            ] {
                assert!(!html.contains(bad), "{hostile} gave {html}");
            }
        }
    }
}
