//! The query language, small on purpose (tantivy's own parser also takes field names, ranges,
//! regular expressions and boosts, which a search box does not need and a hostile query could
//! make expensive):
//!
//! - `word` — a post with the word (in its title, body, comments, link, tags or author's
//!   name); every word given must be there;
//! - `"a phrase"` — these words next to each other, in this order;
//! - `pref*` — a word starting so (at most [`MAX_EXPANSIONS`] words of the index are tried), and
//!   `"a phr"*` a phrase whose last word starts so;
//! - `-word`, `-"a phrase"` — posts without it.
//!
//! Words are analysed as the index's text is (see `schema.rs`), so case and accents do not
//! matter; a word the analyser splits (`example.org`, `don't`) is looked for as a phrase.
//! A query is at most [`MAX_QUERY_BYTES`] long with at most [`MAX_CLAUSES`] parts, each phrase
//! at most [`MAX_PHRASE`] words: the cost of any query is bounded.

use agora_crdt::SubwikiId;
use tantivy::Term;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query,
    TermQuery, TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;

use super::schema::Fields;
use super::{AuthorFilter, SearchError};

/// The longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 512;
/// The most words, phrases and prefixes in one query.
pub const MAX_CLAUSES: usize = 16;
/// The most words in one phrase.
pub const MAX_PHRASE: usize = 16;
/// How many words of the index a prefix may stand for.
pub const MAX_EXPANSIONS: u32 = 64;

/// One part of a query, analysed: its words with their positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Clause {
    /// A word.
    Word(String),
    /// Words next to each other.
    Phrase(Vec<(usize, String)>),
    /// Words next to each other, the last one a prefix (alone: a word starting so).
    Prefix(Vec<(usize, String)>),
}

/// A query as parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Parsed {
    /// What a post must have.
    pub(super) must: Vec<Clause>,
    /// What it must not have.
    pub(super) must_not: Vec<Clause>,
}

/// A part of the query text before analysis.
struct Raw<'a> {
    text: &'a str,
    negated: bool,
    prefix: bool,
}

/// Splits the query into its parts: quoted phrases and bare words, each maybe negated or a
/// prefix.
fn split(text: &str) -> Vec<Raw<'_>> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return parts;
        }
        let negated = rest.starts_with('-');
        if negated {
            rest = rest.get(1..).unwrap_or_default();
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let (inner, after) = quoted.split_once('"').unwrap_or((quoted, ""));
            let prefix = after.starts_with('*');
            rest = after.trim_start_matches('*');
            parts.push(Raw {
                text: inner,
                negated,
                prefix,
            });
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            rest = after;
            let stripped = word.trim_end_matches('*');
            parts.push(Raw {
                text: stripped,
                negated,
                prefix: stripped.len() < word.len(),
            });
        }
    }
}

/// Parses and analyses a query.
pub(super) fn parse(text: &str, analyzer: &mut TextAnalyzer) -> Result<Parsed, SearchError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(SearchError::Query(format!(
            "the query is {} bytes, over the limit of {MAX_QUERY_BYTES}",
            text.len()
        )));
    }
    let mut parsed = Parsed::default();
    for raw in split(text) {
        let mut words: Vec<(usize, String)> = Vec::new();
        let mut stream = analyzer.token_stream(raw.text);
        stream.process(&mut |token| words.push((token.position, token.text.clone())));
        if words.len() > MAX_PHRASE {
            return Err(SearchError::Query(format!(
                "a phrase of {} words, over the limit of {MAX_PHRASE}",
                words.len()
            )));
        }
        // Positions relative to the phrase's first word.
        let first = words.first().map_or(0, |(p, _)| *p);
        for (position, _) in &mut words {
            *position -= first;
        }
        let clause = match (words.len(), raw.prefix) {
            (0, _) => continue,
            (_, true) => Clause::Prefix(words),
            (1, false) => Clause::Word(words.into_iter().map(|(_, w)| w).collect()),
            (_, false) => Clause::Phrase(words),
        };
        if raw.negated {
            parsed.must_not.push(clause);
        } else {
            parsed.must.push(clause);
        }
        if parsed.must.len() + parsed.must_not.len() > MAX_CLAUSES {
            return Err(SearchError::Query(format!(
                "more than {MAX_CLAUSES} words, phrases and prefixes"
            )));
        }
    }
    if parsed.must.is_empty() {
        return Err(SearchError::Query(
            "nothing to look for: give a word, a \"phrase\" or a prefix*".into(),
        ));
    }
    Ok(parsed)
}

/// A clause looked for in one field.
fn in_field(clause: &Clause, field: Field) -> Box<dyn Query> {
    let terms = |words: &[(usize, String)]| -> Vec<(usize, Term)> {
        words
            .iter()
            .map(|(p, w)| (*p, Term::from_field_text(field, w)))
            .collect()
    };
    match clause {
        Clause::Word(word) => Box::new(TermQuery::new(
            Term::from_field_text(field, word),
            IndexRecordOption::WithFreqs,
        )),
        // Parsing makes phrases of two words or more; one word is a term.
        Clause::Phrase(words) => match terms(words).as_slice() {
            [(_, one)] => Box::new(TermQuery::new(one.clone(), IndexRecordOption::WithFreqs)),
            many => Box::new(PhraseQuery::new_with_offset(many.to_vec())),
        },
        Clause::Prefix(words) => {
            let mut query = PhrasePrefixQuery::new_with_offset(terms(words));
            query.set_max_expansions(MAX_EXPANSIONS);
            Box::new(query)
        }
    }
}

/// A clause looked for in every text field: a post matches if any field has it.
fn anywhere(clause: &Clause, fields: &Fields) -> Box<dyn Query> {
    let each = fields
        .text()
        .into_iter()
        .map(|(field, weight)| {
            let query = in_field(clause, field);
            let query: Box<dyn Query> = if (weight - 1.0).abs() < f32::EPSILON {
                query
            } else {
                Box::new(BoostQuery::new(query, weight))
            };
            (Occur::Should, query)
        })
        .collect();
    Box::new(BooleanQuery::new(each))
}

/// A filter that matches but does not weigh in the score.
fn filter(query: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
}

/// The tantivy query for a parsed query in `subwikis` (never empty), by `author` if given.
pub(super) fn build(
    parsed: &Parsed,
    fields: &Fields,
    subwikis: &[SubwikiId],
    author: Option<&AuthorFilter>,
) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for clause in &parsed.must {
        clauses.push((Occur::Must, anywhere(clause, fields)));
    }
    for clause in &parsed.must_not {
        clauses.push((Occur::MustNot, anywhere(clause, fields)));
    }
    let subwikis = subwikis
        .iter()
        .map(|s| Term::from_field_bytes(fields.subwiki, s.as_bytes()));
    clauses.push(filter(Box::new(TermSetQuery::new(subwikis))));
    if let Some(author) = author {
        let term = match author {
            AuthorFilter::Id(id) => Term::from_field_bytes(fields.author, id.as_bytes()),
            AuthorFilter::Fingerprint(f) => Term::from_field_text(fields.fingerprint, f),
        };
        clauses.push(filter(Box::new(TermQuery::new(
            term,
            IndexRecordOption::Basic,
        ))));
    }
    Box::new(BooleanQuery::new(clauses))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::search::schema::analyzer;

    fn parse_ok(text: &str) -> Parsed {
        parse(text, &mut analyzer()).unwrap()
    }

    fn words(list: &[&str]) -> Vec<(usize, String)> {
        list.iter()
            .enumerate()
            .map(|(i, w)| (i, (*w).to_owned()))
            .collect()
    }

    #[test]
    fn queries_parse_into_words_phrases_prefixes_and_exclusions() {
        let p = parse_ok(r#"Café "Big  Bad wolf" wor* -spam -"no way" "the ol"* example.org"#);
        assert_eq!(
            p.must,
            vec![
                Clause::Word("cafe".into()),
                Clause::Phrase(words(&["big", "bad", "wolf"])),
                Clause::Prefix(words(&["wor"])),
                Clause::Prefix(words(&["the", "ol"])),
                Clause::Phrase(words(&["example", "org"])),
            ]
        );
        assert_eq!(
            p.must_not,
            vec![
                Clause::Word("spam".into()),
                Clause::Phrase(words(&["no", "way"]))
            ]
        );
        // Punctuation alone is nothing; an unclosed quote runs to the end.
        assert_eq!(
            parse_ok(r#"... "open ended"#).must,
            vec![Clause::Phrase(words(&["open", "ended"]))]
        );
    }

    #[test]
    fn empty_negative_only_and_oversized_queries_are_refused() {
        for bad in ["", "   ", "-alone", "*", "\"\"", "!!!"] {
            assert!(parse(bad, &mut analyzer()).is_err(), "{bad:?}");
        }
        let long = "a".repeat(MAX_QUERY_BYTES + 1);
        assert!(parse(&long, &mut analyzer()).is_err());
        let many = vec!["w"; MAX_CLAUSES + 1].join(" ");
        assert!(parse(&many, &mut analyzer()).is_err());
        let phrase = format!("\"{}\"", vec!["w"; MAX_PHRASE + 1].join(" "));
        assert!(parse(&phrase, &mut analyzer()).is_err());
        // Hostile input never panics.
        for odd in [
            "\"",
            "-",
            "-\"",
            "\"*",
            "*\"*",
            "-*",
            "\u{202e}x",
            "a\"b\"c*-d",
        ] {
            let _ = parse(odd, &mut analyzer());
        }
    }
}
