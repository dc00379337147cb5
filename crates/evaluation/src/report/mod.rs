//! Reports: tables and plots of a run, written as Markdown and HTML next to the results.

pub mod plots;
