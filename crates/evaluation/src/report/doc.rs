//! A tiny document model rendered to both Markdown and HTML, so the two reports never drift.

use std::fmt::Write as _;

/// One block of a report.
#[derive(Debug, Clone)]
pub enum Block {
    /// A heading of level 1–4.
    Heading(u8, String),
    /// A paragraph of plain text.
    Para(String),
    /// A table: header cells and rows of cells.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A figure: path (relative to the report) of the SVG, of the PNG, and a caption.
    Figure {
        /// SVG file, relative to the report.
        svg: String,
        /// PNG file, relative to the report.
        png: String,
        /// Caption.
        caption: String,
    },
    /// Preformatted text.
    Code(String),
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Renders blocks as GitHub-flavoured Markdown.
pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(
                    out,
                    "{} {text}\n",
                    "#".repeat((*level).clamp(1, 6) as usize)
                );
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::Table(head, rows) => {
                let _ = writeln!(
                    out,
                    "| {} |",
                    head.iter()
                        .map(|c| md_cell(c))
                        .collect::<Vec<_>>()
                        .join(" | ")
                );
                let _ = writeln!(
                    out,
                    "|{}|",
                    head.iter().map(|_| " --- ").collect::<Vec<_>>().join("|")
                );
                for r in rows {
                    let _ = writeln!(
                        out,
                        "| {} |",
                        r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | ")
                    );
                }
                out.push('\n');
            }
            Block::Figure { png, caption, .. } => {
                let _ = writeln!(out, "![{caption}]({png})\n\n*{caption}*\n");
            }
            Block::Code(text) => {
                let _ = writeln!(out, "```\n{text}\n```\n");
            }
        }
    }
    out
}

/// Renders blocks as a standalone HTML page.
pub fn to_html(title: &str, blocks: &[Block]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
table{{border-collapse:collapse;margin:1em 0;font-size:0.92em}}th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\
th{{background:#f3f3f3}}tr:nth-child(even) td{{background:#fafafa}}figure{{margin:1.5em 0}}img{{max-width:100%}}\
figcaption{{color:#555;font-size:0.9em}}pre{{background:#f6f6f6;padding:0.8em;overflow:auto}}\
</style></head><body>\n",
        html_escape(title)
    );
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let l = (*level).clamp(1, 6);
                let _ = writeln!(out, "<h{l}>{}</h{l}>", html_escape(text));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "<p>{}</p>", html_escape(text));
            }
            Block::Table(head, rows) => {
                out.push_str("<table><thead><tr>");
                for h in head {
                    let _ = write!(out, "<th>{}</th>", html_escape(h));
                }
                out.push_str("</tr></thead><tbody>\n");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        let _ = write!(out, "<td>{}</td>", html_escape(c));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody></table>\n");
            }
            Block::Figure { svg, caption, .. } => {
                let _ = writeln!(
                    out,
                    "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                    html_escape(svg),
                    html_escape(caption),
                    html_escape(caption)
                );
            }
            Block::Code(text) => {
                let _ = writeln!(out, "<pre>{}</pre>", html_escape(text));
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}
