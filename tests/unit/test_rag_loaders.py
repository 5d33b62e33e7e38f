"""Loaders: every format from files the tests write (a PDF by hand, a DOCX with
python-docx), metadata (title, page, record, extra, modified), and the directory walk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genai.errors import ValidationError
from rag import Document, collect_files, load_file, register_loader, supported_suffixes


def write_pdf(path: Path, pages: list[str], *, title: str | None = None) -> Path:
    """A minimal valid PDF: one Helvetica text line per page, with an xref table."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for index, text in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info_id = None
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        info_id = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    info = f" /Info {info_id} 0 R" if info_id else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\n".encode()
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    path.write_bytes(bytes(out))
    return path


def test_text_and_markdown(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("Plain words.\n", encoding="utf-8")
    (tmp_path / "guide.md").write_text("Intro\n\n# The Guide\n\n## Part\n\nBody.\n")
    [txt] = load_file(tmp_path / "notes.txt")
    assert (txt.text, txt.title, txt.markdown) == ("Plain words.\n", "notes", False)
    assert txt.modified is not None and txt.source == str(tmp_path / "notes.txt")
    [md] = load_file(tmp_path / "guide.md")
    assert md.title == "The Guide" and md.markdown


def test_undecodable_bytes_do_not_fail_a_text_file(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("caf\xe9 ok".encode("latin-1"))
    [doc] = load_file(tmp_path / "latin.txt")
    assert doc.text.startswith("caf") and doc.text.endswith(" ok")


def test_html_becomes_markdown_without_scripts(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>Refund Policy</title><style>p{color:red}</style></head><body>"
        "<script>var secret = 1;</script><h1>Refunds</h1><p>Refunds take\n   five days.</p>"
        "<h2>Exceptions</h2><ul><li>Gift cards</li><li>Sale items</li></ul>"
        "<table><tr><td>Plan</td><td>Days</td></tr></table></body></html>"
    )
    [doc] = load_file(page)
    assert doc.title == "Refund Policy" and doc.markdown
    assert "# Refunds" in doc.text and "## Exceptions" in doc.text
    assert "Refunds take five days." in doc.text
    assert "- Gift cards" in doc.text and "Plan | Days" in doc.text
    assert "secret" not in doc.text and "color" not in doc.text


def test_pdf_one_document_per_page_with_title(tmp_path: Path) -> None:
    pdf = write_pdf(
        tmp_path / "manual.pdf",
        ["Page one talks about setup.", "", "Page three covers billing."],
        title="Operator Manual",
    )
    docs = load_file(pdf)
    assert [d.page for d in docs] == [1, 3]  # the empty page has no text
    assert docs[0].title == "Operator Manual"
    assert "billing" in docs[1].text


def test_pdf_title_falls_back_to_the_file_name(tmp_path: Path) -> None:
    [doc] = load_file(write_pdf(tmp_path / "faq.pdf", ["Hello there."]))
    assert doc.title == "faq"


def test_a_broken_pdf_is_a_validation_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not a pdf")
    with pytest.raises(ValidationError, match=r"bad\.pdf"):
        load_file(bad)


def test_docx_headings_lists_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Handbook", level=1)
    document.add_paragraph("Welcome to the team.")
    document.add_heading("Leave", level=2)
    document.add_paragraph("Annual leave", style="List Bullet")
    document.add_paragraph("Sick leave", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Type", "Days"
    table.cell(1, 0).text, table.cell(1, 1).text = "Annual", "25"
    path = tmp_path / "handbook.docx"
    document.save(str(path))
    [doc] = load_file(path)
    assert doc.title == "Handbook" and doc.markdown
    assert doc.text.index("# Handbook") < doc.text.index("## Leave")
    assert "- Annual leave" in doc.text and "Annual | 25" in doc.text


def test_json_list_and_jsonl_records(tmp_path: Path) -> None:
    rows = [
        {"_id": "d1", "title": "First", "text": "Alpha body.", "lang": "en", "year": 2020},
        {"_id": "d2", "title": "Second", "text": "Beta body.", "lang": "de", "year": 2021},
    ]
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "docs.json").write_text(json.dumps(rows))
    for name in ("docs.jsonl", "docs.json"):
        docs = load_file(tmp_path / name)
        assert [(d.record, d.title, d.text) for d in docs] == [
            ("d1", "First", "Alpha body."),
            ("d2", "Second", "Beta body."),
        ]
        assert docs[1].extra == {"lang": "de", "year": 2021}


def test_json_without_a_text_field_renders_every_field(tmp_path: Path) -> None:
    (tmp_path / "faq.json").write_text(json.dumps({"question": "Q?", "answer": "A.", "n": 1}))
    [doc] = load_file(tmp_path / "faq.json")
    assert doc.title == "Q?" and "answer: A." in doc.text and doc.record == "0"


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(ValidationError, match="line 2"):
        load_file(tmp_path / "x.jsonl")
    (tmp_path / "y.jsonl").write_text('["not", "an", "object"]\n')
    with pytest.raises(ValidationError, match="not a JSON object"):
        load_file(tmp_path / "y.jsonl")


def test_csv_rows_are_documents(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text(
        "id,question,answer\n1,How do refunds work?,Within 5 days.\n2,Shipping?,Free.\n"
    )
    docs = load_file(tmp_path / "faq.csv")
    assert [d.record for d in docs] == ["1", "2"]
    assert docs[0].title == "How do refunds work?"
    assert "answer: Within 5 days." in docs[0].text


def test_unknown_suffix_is_refused_with_the_supported_list(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValidationError, match=r"no loader for image.png.*\.pdf"):
        load_file(tmp_path / "image.png")
    with pytest.raises(ValidationError, match="no loader"):
        collect_files([tmp_path / "image.png"])
    assert ".docx" in supported_suffixes()


def test_directory_walk_with_include_and_exclude(tmp_path: Path) -> None:
    for rel in [
        "a.md",
        "b.txt",
        "sub/c.md",
        "sub/deep/d.html",
        "drafts/e.md",
        ".git/config.txt",
        "image.png",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    files, roots = collect_files([tmp_path])
    names = sorted(p.relative_to(tmp_path).as_posix() for p in files)
    assert names == ["a.md", "b.txt", "drafts/e.md", "sub/c.md", "sub/deep/d.html"]
    assert roots == [tmp_path.resolve()]
    files, _ = collect_files([tmp_path], include=["*.md"], exclude=[".*", "drafts"])
    assert sorted(p.name for p in files) == ["a.md", "c.md"]
    with pytest.raises(ValidationError, match="does not exist"):
        collect_files([tmp_path / "missing"])


def test_register_loader_adds_a_format(tmp_path: Path) -> None:
    class Upper:
        def load(self, path: Path) -> list[Document]:
            return [Document(text=path.read_text().upper(), source=str(path))]

    register_loader(".shout", Upper())
    (tmp_path / "x.shout").write_text("hey")
    assert load_file(tmp_path / "x.shout")[0].text == "HEY"
    with pytest.raises(ValidationError, match="starts with a dot"):
        register_loader("shout", Upper())
