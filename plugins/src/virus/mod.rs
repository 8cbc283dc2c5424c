//! Virus plugins (hook `data_post`).

pub mod klez_filter;
