//! Packs the site into `$OUT_DIR/site.pack`.
//!
//! `OASIS_SITE_DIR=/some/dir` packs that directory as it is. Otherwise the site is
//! the project's own documentation: README.md, BENCHMARKS.md and docs/*.md rendered
//! to HTML (links between them rewritten to the .html pages), plus the Markdown
//! sources themselves.
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=OASIS_SITE_DIR");
    let dir = match env::var_os("OASIS_SITE_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            println!("cargo:rerun-if-changed={}", d.display());
            d
        }
        None => render_docs(&out),
    };
    let pack = oasis_http::builder::pack_dir(&dir)
        .unwrap_or_else(|e| panic!("packing the site from {}: {e}", dir.display()));
    fs::write(out.join("site.pack"), pack).expect("write site.pack");
}

fn render_docs(out: &Path) -> PathBuf {
    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir")).join("../..");
    let site = out.join("site");
    let _ = fs::remove_dir_all(&site);
    fs::create_dir_all(site.join("docs")).expect("create site dir");
    let mut pages: Vec<(PathBuf, PathBuf, String)> = vec![
        (
            root.join("README.md"),
            site.join("index.html"),
            "Oasis".into(),
        ),
        (
            root.join("BENCHMARKS.md"),
            site.join("benchmarks.html"),
            "Benchmarks".into(),
        ),
    ];
    if let Ok(rd) = fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        for p in docs {
            let stem = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            pages.push((
                p.clone(),
                site.join("docs").join(format!("{stem}.html")),
                stem,
            ));
        }
    }
    println!("cargo:rerun-if-changed={}", root.join("docs").display());
    let nav: String = pages
        .iter()
        .map(|(_, html, title)| {
            let href = html
                .strip_prefix(&site)
                .unwrap_or(html)
                .to_string_lossy()
                .replace('\\', "/");
            format!("<a href=\"/{href}\">{title}</a>")
        })
        .collect::<Vec<_>>()
        .join(" · ");
    for (md, html, title) in &pages {
        println!("cargo:rerun-if-changed={}", md.display());
        let Ok(text) = fs::read_to_string(md) else {
            continue;
        };
        let body = markdown(&text);
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\n\
             <body><nav>{nav} · <em>served by an Oasis unikernel</em></nav><main>\n{body}</main></body></html>\n"
        );
        fs::write(html, page).expect("write page");
        // The Markdown source too, next to the page.
        let raw = html.with_extension("md");
        fs::copy(md, raw).expect("copy markdown");
    }
    fs::write(site.join("style.css"), CSS).expect("write css");
    site
}

fn markdown(text: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
    let parser = Parser::new_ext(text, Options::ENABLE_TABLES).map(|ev| match ev {
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let dest = dest_url.to_string();
            let dest_url = match dest.strip_suffix(".md") {
                Some(stem) if !dest.contains("://") => {
                    let stem = stem.trim_start_matches("../").trim_start_matches("./");
                    let page = match stem {
                        "README" => "/index".to_string(),
                        "BENCHMARKS" => "/benchmarks".to_string(),
                        s => format!("/{s}"),
                    };
                    CowStr::from(format!("{page}.html"))
                }
                _ => dest_url,
            };
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            })
        }
        e => e,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

const CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}\
nav{font-size:.9rem;border-bottom:1px solid #ddd;padding-bottom:.5rem;margin-bottom:1rem}\
pre{background:#f6f6f6;padding:.75rem;overflow:auto}code{font-size:.9em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem}\n";
