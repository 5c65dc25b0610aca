#!/usr/bin/env python3
"""Man pages for libsockserv, generated from the public headers' comments.

    gen-man-pages.py --version 0.1.0 --out DIR include/sockserv/*.h

Writes DIR/NAME.3 for every function and object a header declares with
SS_API (what the shared library exports) and for every struct it defines
(`man ss_config` lists its fields), in man(7) markup. The text is the doc
comment before the declaration (`/** ... */`) and any after it on the same
line (`/**< ... */`); a declaration without one takes the comment of the
declaration right above it when nothing separates them (a group that one
comment describes). SEE ALSO names the other pages of the same header
section (the banner comments that divide the headers) and sockserv(3).

Run at build time (CMake target man_pages), so the pages cannot drift from
the headers; .ci/check-man-pages.sh checks that every exported symbol has
a page and that every page passes groff's and man's warnings. Python's
standard library only.
"""
import argparse
import os
import re
import sys


def clean_comment(text):
    """The text of a /** */ or /**< */ comment, lines without ' * '."""
    body = re.sub(r'^/\*\*<?', '', text)
    body = re.sub(r'\*/$', '', body)
    lines = body.split('\n')
    out = []
    for line in lines:
        line = re.sub(r'^\s*\* ?', '', line) if re.match(r'^\s*\*', line) else line
        out.append(line.rstrip())
    # Drop leading and trailing blank lines; remove the common indentation
    # of the first line when the comment starts on the /** line.
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    if out:
        out[0] = out[0].lstrip()
    if text.startswith('/**<'):
        # A comment after a declaration continues in the column it started
        # in, not as an indented block.
        out = [line.strip() for line in out]
    return '\n'.join(out)


def banner_title(text):
    """The title of a section banner comment, or None for another comment."""
    if not re.search(r'-{4,}|={4,}', text):
        return None
    body = text[2:-2]
    for line in body.split('\n'):
        line = re.sub(r'^\s*\*?\s*', '', line)
        line = re.sub(r'-{2,}|={2,}', '', line).strip()
        if line:
            return line
    return None


class Decl:
    def __init__(self, kind, name, code, header, section, doc):
        self.kind = kind          # 'function', 'object', 'struct'
        self.name = name
        self.code = code          # the declaration, one line (or struct)
        self.header = header
        self.section = section
        self.doc = doc or ''
        self.fields = []          # struct: [name, code, doc] or ['', '', note]
        self.group_doc = self.doc # what an undocumented neighbour inherits


def parse_header(path, header_name):
    src = open(path, encoding='utf-8').read()
    decls = []
    typedef_docs = {}
    section = os.path.basename(path)
    pending = None          # a leading doc comment not yet used
    last = None             # the last declaration (for /**< */ and groups)
    adjacent = False        # nothing but white space since `last`
    struct = None           # the struct being read
    last_field = None
    depth = 0
    stmt = ''
    i, n = 0, len(src)
    at_line_start = True
    while i < n:
        if src.startswith('/*', i):
            j = src.index('*/', i + 2) + 2
            text = src[i:j]
            i = j
            if text.startswith('/**<'):
                doc = clean_comment(text)
                target = last_field if struct else last
                if target is not None:
                    if isinstance(target, list):
                        target[2] = (target[2] + '\n\n' + doc).strip()
                    else:
                        target.doc = (target.doc + '\n\n' + doc).strip()
            elif text.startswith('/**'):
                if '@file' in text:
                    continue
                doc = clean_comment(text)
                if pending is not None and struct:
                    # Two leading comments in a row: the first introduces
                    # the fields that follow.
                    struct.fields.append(['', '', pending])
                    pending = doc
                elif pending is not None:
                    # ... or the group of declarations that follows.
                    pending = pending + '\n\n' + doc
                else:
                    pending = doc
                adjacent = False
            else:
                title = banner_title(text)
                if title and not struct:
                    section = title
                    pending = None
                adjacent = False
            continue
        if src.startswith('//', i):
            i = src.index('\n', i)
            continue
        c = src[i]
        if c == '#' and at_line_start:
            j = i
            while True:
                e = src.find('\n', j)
                if e < 0:
                    e = n
                if src[e - 1] == '\\':
                    j = e + 1
                    continue
                break
            i = e
            pending = None
            adjacent = False
            continue
        if c == '\n':
            if src[i + 1:i + 2] == '\n' or src[i + 1:].startswith(' \n'):
                adjacent = False
            at_line_start = True
        elif not c.isspace():
            at_line_start = False
        stmt += c
        if struct is not None:
            if c == '{':
                depth += 1
            elif c == '}':
                depth -= 1
                if depth == 0:
                    # the rest up to ';' is the typedef name, if any
                    j = src.index(';', i)
                    i = j + 1
                    decls.append(struct)
                    struct = None
                    stmt = ''
                    pending = None
                    last = None
                    continue
            elif c == ';' and depth == 1:
                code = ' '.join(stmt.split())
                stmt = ''
                m = re.search(r'\(\s*\*\s*(\w+)\s*\)', code)
                name = m.group(1) if m else re.findall(r'(\w+)\s*(?:\[[^]]*\])*\s*;$', code)
                if isinstance(name, list):
                    name = name[0] if name else ''
                last_field = [name, code, pending or '']
                struct.fields.append(last_field)
                pending = None
            i += 1
            continue
        if c == '{':
            m = re.search(r'(?:typedef\s+)?struct\s+(\w+)\s*\{$', stmt.strip())
            if m:
                doc = pending or typedef_docs.get(m.group(1), '')
                struct = Decl('struct', m.group(1), '', header_name, section,
                              doc)
                depth = 1
                stmt = ''
                pending = None
                last_field = None
                i += 1
                continue
        if c == ';':
            code = ' '.join(stmt.split())
            # What a preprocessor block left (extern "C" {) is not part of it.
            code = re.sub(r'^.*\bextern "C" \{\s*', '', code)
            stmt = ''
            doc = pending
            pending = None
            m = re.match(r'typedef struct (\w+) (\w+);$', code)
            if m and doc:
                typedef_docs[m.group(1)] = doc
            if code.startswith('SS_API'):
                decl = None
                m = re.match(r'SS_API\s+extern\s+(.*?)\b(ss_\w+)\s*;$', code)
                if m:
                    decl = Decl('object', m.group(2),
                                'extern ' + m.group(1) + m.group(2) + ';',
                                header_name, section, doc)
                m = None if decl else re.match(
                    r'SS_API\s+(.*?)\b(ss_\w+)\s*(\(.*\))\s*(SS_PRINTF\([^)]*\))?\s*;$',
                    code)
                if m:
                    decl = Decl('function', m.group(2),
                                m.group(1) + m.group(2) + m.group(3) + ';',
                                header_name, section, doc)
                if decl:
                    if not decl.doc and adjacent and last is not None:
                        decl.doc = last.group_doc
                    decl.group_doc = doc if doc else (
                        last.group_doc if adjacent and last else '')
                    decls.append(decl)
                    last = decl
                    adjacent = True
                    i += 1
                    continue
            last = None
            adjacent = False
        i += 1
    return decls


# ---- roff ------------------------------------------------------------------

def escape(text):
    """Backslashes and minus signs for roff; anything beyond ASCII as a
    groff Unicode escape, so the page reads the same whatever encoding
    groff assumes (plain groff reads Latin-1)."""
    text = text.replace('\\', '\\e').replace('-', '\\-')
    return ''.join(c if ord(c) < 128 else '\\[u%04X]' % ord(c) for c in text)


def inline(text):
    """A line of filled text: escapes, `code` and ss_names() in bold."""
    text = escape(text)
    text = re.sub(r'`([^`]+)`', r'\\fB\1\\fR', text)
    text = re.sub(r'\b(ss_\w+|SS_[A-Z0-9_]+)(\(\))', r'\\fB\1\\fR\2', text)
    return text


def protect(line):
    """A roff text line that must not be read as a request."""
    if line.startswith(('.', "'")):
        return '\\&' + line
    return line


def paragraphs(doc):
    paras, cur = [], []
    for line in doc.split('\n'):
        if line.strip():
            cur.append(line)
        elif cur:
            paras.append(cur)
            cur = []
    if cur:
        paras.append(cur)
    return paras


def doc_to_roff(doc):
    out = []
    for para in paragraphs(doc):
        indented = any(line.startswith(' ') for line in para)
        out.append('.PP')
        if indented:
            # Laid out by its author (lists, code): kept as it is.
            out.append('.EX')
            for line in para:
                out.append(protect(escape(line)))
            out.append('.EE')
        else:
            out.append(protect(inline(' '.join(l.strip() for l in para))))
    return out


def wrap_prototype(code, width=72):
    """A long prototype broken after commas, continuation lines aligned
    after its '(' as the headers' own are."""
    if len(code) <= width or '(' not in code:
        return [code]
    indent = ' ' * (code.index('(') + 1)
    if len(indent) > 40:
        indent = ' ' * 8
    lines, cur = [], ''
    for part in re.split(r'(?<=,) ', code):
        if cur and len(cur) + 1 + len(part) > width:
            lines.append(cur)
            cur = indent + part
        else:
            cur = cur + ' ' + part if cur else part
    lines.append(cur)
    return lines


def brief(doc):
    text = ' '.join(doc.split())
    m = re.search(r'(?<!e\.g)(?<!i\.e)(?<!etc)\.(\s|$)', text)
    if m:
        text = text[:m.start()]
    if len(text) > 150:
        text = text[:147].rsplit(' ', 1)[0] + '...'
    return text or 'part of libsockserv'


def page(decl, version, see_also):
    lines = [
        '.\\" Generated by docs/man/gen-man-pages.py from %s; do not edit.'
        % decl.header,
        '.nr HY 0', # no hyphenation: names must stay whole (before .TH)
        '.TH %s 3 "" "libsockserv %s" "libsockserv Manual"'
        % (decl.name.upper(), version),
        '.SH NAME',
        protect('%s \\- %s' % (escape(decl.name), escape(brief(decl.doc)))),
        '.SH LIBRARY',
        'libsockserv',
        '.RI ( \\-lsockserv ;',
        '.BR "pkg\\-config \\-\\-cflags \\-\\-libs sockserv" )',
        '.SH SYNOPSIS',
        '.nf',
        '.B #include <sockserv/%s>' % decl.header,
        '.PP',
    ]
    if decl.kind == 'struct':
        lines.append('.EX')
        lines.append('struct %s {' % decl.name)
        for name, code, _ in decl.fields:
            if code:
                lines.append(protect(escape('    ' + code)))
        lines.append('};')
        lines.append('.EE')
    else:
        for line in wrap_prototype(decl.code):
            lines.append(protect(escape(line)))
    lines.append('.fi')
    lines.append('.SH DESCRIPTION')
    body = doc_to_roff(decl.doc) if decl.doc else ['.PP', 'Undocumented.']
    if body and body[0] == '.PP':
        body = body[1:]
    lines.extend(body)
    if decl.kind == 'struct' and any(code for _, code, _ in decl.fields):
        lines.append('.SS Fields')
        for name, code, doc in decl.fields:
            if not code:
                lines.extend(doc_to_roff(doc))
                continue
            lines.append('.TP')
            lines.append('.B %s' % escape(name))
            field_doc = doc_to_roff(doc) if doc else ['.PP', 'Undocumented.']
            if field_doc and field_doc[0] == '.PP':
                field_doc = field_doc[1:]
            # Further paragraphs stay inside the field's item.
            lines.extend('.IP' if l == '.PP' else l for l in field_doc)
    if decl.kind == 'function' and re.match(r'(int|ssize_t|pid_t) ', decl.code):
        lines.append('.SH RETURN VALUE')
        lines.append('As described above. Unless it says otherwise, a '
                     'function of libsockserv returns 0 or a count on '
                     'success and a negative')
        lines.append('.I errno')
        lines.append('value on failure;')
        lines.append('.BR ss_strerror ()')
        lines.append('names it (see')
        lines.append('.BR sockserv (3)).')
    lines.append('.SH SEE ALSO')
    lines.append('.ad l')
    refs = ['sockserv'] + [n for n in see_also if n != decl.name]
    for k, ref in enumerate(refs):
        lines.append('.BR %s (3)%s' % (escape(ref), ',' if k + 1 < len(refs) else ''))
    return '\n'.join(lines) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--version', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('headers', nargs='+')
    args = ap.parse_args()
    decls = []
    for path in args.headers:
        decls.extend(parse_header(path, os.path.basename(path)))
    seen = {}
    for d in decls:
        if d.name in seen:
            sys.exit('gen-man-pages: %s declared twice (%s and %s)'
                     % (d.name, seen[d.name].header, d.header))
        seen[d.name] = d
    by_section = {}
    for d in decls:
        by_section.setdefault((d.header, d.section), []).append(d.name)
    os.makedirs(args.out, exist_ok=True)
    for old in os.listdir(args.out):
        if old.endswith('.3'):
            os.unlink(os.path.join(args.out, old))
    for d in decls:
        see = by_section[(d.header, d.section)]
        with open(os.path.join(args.out, d.name + '.3'), 'w',
                  encoding='utf-8') as f:
            f.write(page(d, args.version, see))
    print('gen-man-pages: %d pages in %s' % (len(decls), args.out))


if __name__ == '__main__':
    main()
