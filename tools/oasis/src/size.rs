//! Image size report: bytes per allocated section, code vs embedded content, and the
//! size of the image once stripped of symbols and debug info.

use std::path::Path;

use anyhow::Context;
use object::{Object, ObjectSection, SectionFlags};

/// One section of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub size: u64,
    /// Occupies bytes in the file (not .bss-like).
    pub in_file: bool,
}

/// What an image is made of.
#[derive(Debug, Clone)]
pub struct Report {
    pub sections: Vec<Section>,
    /// Bytes of the file as built.
    pub file_bytes: u64,
    /// Bytes after `strip`: headers plus every loaded section's file bytes.
    pub stripped_bytes: u64,
    /// Bytes of embedded content (the `.oasis_content` section).
    pub content_bytes: u64,
}

const SHF_ALLOC: u64 = 0x2;
const CONTENT_SECTION: &str = ".oasis_content";

/// Reads the ELF image at `path`.
pub fn report(path: &Path) -> anyhow::Result<Report> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an ELF image", path.display()))?;
    let mut sections = Vec::new();
    let mut loaded_end = 0u64;
    for s in file.sections() {
        let (flags, kind) = match s.flags() {
            SectionFlags::Elf { sh_flags } => (sh_flags, s.kind()),
            _ => continue,
        };
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        let name = s.name().unwrap_or("?").to_string();
        let in_file = !is_nobits(kind);
        if let (true, Some((off, size))) = (in_file, s.file_range()) {
            loaded_end = loaded_end.max(off + size);
        }
        sections.push(Section {
            name,
            size: s.size(),
            in_file,
        });
    }
    let content_bytes = sections
        .iter()
        .filter(|s| s.name == CONTENT_SECTION)
        .map(|s| s.size)
        .sum();
    // A stripped ELF keeps everything up to the end of the last loaded section, plus
    // a small section header table (~10 entries) and .shstrtab.
    let stripped_bytes = loaded_end + 64 * 10 + 128;
    Ok(Report {
        sections,
        file_bytes: data.len() as u64,
        stripped_bytes,
        content_bytes,
    })
}

fn is_nobits(kind: object::SectionKind) -> bool {
    matches!(
        kind,
        object::SectionKind::UninitializedData | object::SectionKind::UninitializedTls
    )
}

impl Report {
    /// Code and data bytes in the file, excluding embedded content.
    pub fn code_bytes(&self) -> u64 {
        self.stripped_bytes - self.content_bytes
    }

    /// Memory the image occupies once loaded (including .bss and the boot stack).
    pub fn memory_bytes(&self) -> u64 {
        self.sections.iter().map(|s| s.size).sum()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<18} {:>10}", "section", "bytes")?;
        for s in &self.sections {
            let note = if s.in_file { "" } else { "(memory only)" };
            writeln!(f, "{:<18} {:>10}  {note}", s.name, s.size)?;
        }
        writeln!(f, "{:<18} {:>10}", "stripped image", self.stripped_bytes)?;
        writeln!(f, "{:<18} {:>10}", "  code+data", self.code_bytes())?;
        writeln!(f, "{:<18} {:>10}", "  content", self.content_bytes)?;
        writeln!(f, "{:<18} {:>10}", "loaded in memory", self.memory_bytes())?;
        write!(
            f,
            "{:<18} {:>10}  (with symbols and debug info)",
            "file as built", self.file_bytes
        )
    }
}
