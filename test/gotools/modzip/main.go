// Command modzip answers questions about module zips the way golang.org/x/mod
// (and the go command, which uses it) answers them, so the TypeScript in
// src/modzip can be checked against Go's own behaviour at test time.
//
// Every subcommand prints one JSON object on stdout and exits 0 unless its
// arguments are unusable; failures of the thing under test are reported in
// the JSON, not through the exit status.
//
//	check <zip> <module> <version>        zip.CheckZip, dirhash.HashZip, zip.Unzip
//	hashzip <zip>                         dirhash.HashZip
//	create <dir> <module> <version> <out> zip.CreateFromDir, then HashZip of the result
//	create-files <dir> <module> <version> <out>
//	                                      zip.Create over every non-directory entry of dir
//	                                      (symlinks included, nothing skipped), as cmd/go
//	                                      does with a `git archive` listing
//	hash <dir> <prefix>                   dirhash.HashDir
//	gomodhash <file>                      the go.sum "/go.mod" hash of a file
//	lang <go-version>...                  go/version.Lang("go"+v) for each argument
//	checkfiles                            zip.CheckFiles over synthetic file lists read as JSON
//	                                      from stdin: [{"files":[{"name","mode","size","data"}]}]
//	foldtable                             [rune, smallest rune of its unicode.SimpleFold orbit]
//	                                      for every rune that has an orbit
package main

import (
	"encoding/json"
	"fmt"
	"go/version"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	"archive/zip"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	var out any
	switch os.Args[1] {
	case "check":
		need(args, 3)
		out = check(args[0], args[1], args[2])
	case "hashzip":
		need(args, 1)
		h, err := dirhash.HashZip(args[0], dirhash.Hash1)
		out = result{Err: errString(err), H1: strOrNil(h, err)}
	case "create":
		need(args, 4)
		out = create(args[0], args[1], args[2], args[3], false)
	case "create-files":
		need(args, 4)
		out = create(args[0], args[1], args[2], args[3], true)
	case "hash":
		need(args, 2)
		h, err := dirhash.HashDir(args[0], args[1], dirhash.Hash1)
		out = result{Err: errString(err), H1: strOrNil(h, err)}
	case "gomodhash":
		need(args, 1)
		h, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
			return os.Open(args[0])
		})
		out = result{Err: errString(err), H1: strOrNil(h, err)}
	case "checkfiles":
		out = checkFiles()
	case "foldtable":
		var pairs [][2]rune
		for r := rune(0); r <= unicode.MaxRune; r++ {
			if unicode.SimpleFold(r) == r {
				continue
			}
			m := r
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f < m {
					m = f
				}
			}
			pairs = append(pairs, [2]rune{r, m})
		}
		out = pairs
	case "lang":
		langs := make([]string, len(args))
		for i, a := range args {
			langs[i] = version.Lang("go" + a)
		}
		out = langs
	default:
		usage()
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

type result struct {
	// Err is the first failure, in the order the go command meets them.
	Err      *string  `json:"err"`
	H1       *string  `json:"h1"`
	CheckErr *string  `json:"checkErr,omitempty"`
	HashErr  *string  `json:"hashErr,omitempty"`
	UnzipErr *string  `json:"unzipErr,omitempty"`
	Files    []string `json:"files,omitempty"`
	Omitted  []string `json:"omitted,omitempty"`
}

func check(zipPath, modPath, vers string) result {
	m := module.Version{Path: modPath, Version: vers}
	var r result

	// What the go command does after downloading: every name must carry the
	// prefix (fetch.go downloadZip), then HashZip; at extraction, Unzip
	// (which runs CheckZip first, then enforces declared sizes and CRCs).
	_, cerr := modzip.CheckZip(m, zipPath)
	r.CheckErr = errString(cerr)
	h, herr := dirhash.HashZip(zipPath, dirhash.Hash1)
	r.HashErr = errString(herr)
	if herr == nil {
		r.H1 = &h
	}
	tmp, err := os.MkdirTemp("", "modzip-unzip-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "m")
	uerr := modzip.Unzip(dir, m, zipPath)
	r.UnzipErr = errString(uerr)
	// Unzip leaves read-only files; make the tree removable.
	filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	for _, e := range []*string{r.CheckErr, r.HashErr, r.UnzipErr} {
		if e != nil {
			r.Err = e
			break
		}
	}
	if r.Err == nil {
		zr, err := zip.OpenReader(zipPath)
		if err == nil {
			for _, f := range zr.File {
				r.Files = append(r.Files, f.Name)
			}
			zr.Close()
		}
	}
	return r
}

func create(dir, modPath, vers, outPath string, allFiles bool) result {
	m := module.Version{Path: modPath, Version: vers}
	f, err := os.Create(outPath)
	if err != nil {
		fatal(err)
	}
	var cerr error
	var omitted []string
	if allFiles {
		files, err := listAll(dir)
		if err != nil {
			fatal(err)
		}
		cf, _ := modzip.CheckFiles(files)
		for _, o := range cf.Omitted {
			omitted = append(omitted, o.Path)
		}
		cerr = modzip.Create(f, m, files)
	} else {
		cf, _ := modzip.CheckDir(dir)
		for _, o := range cf.Omitted {
			rel, err := filepath.Rel(dir, o.Path)
			if err != nil {
				rel = o.Path
			}
			omitted = append(omitted, filepath.ToSlash(rel))
		}
		cerr = modzip.CreateFromDir(f, m, dir)
	}
	if err := f.Close(); err != nil && cerr == nil {
		cerr = err
	}
	sort.Strings(omitted)
	r := result{Err: errString(cerr), Omitted: omitted}
	if cerr != nil {
		return r
	}
	h, herr := dirhash.HashZip(outPath, dirhash.Hash1)
	if herr != nil {
		r.Err = errString(herr)
		return r
	}
	r.H1 = &h
	zr, err := zip.OpenReader(outPath)
	if err != nil {
		fatal(err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		r.Files = append(r.Files, zf.Name)
	}
	return r
}

// listAll lists every non-directory entry under dir in lexical walk order,
// with Lstat information, so symlinks and other irregular files reach
// zip.Create the way entries of a `git archive` listing do in cmd/go.
func listAll(dir string) ([]modzip.File, error) {
	var files []modzip.File
	err := filepath.Walk(dir, func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, dirFile{path: p, slash: filepath.ToSlash(rel), info: info})
		return nil
	})
	return files, err
}

type dirFile struct {
	path, slash string
	info        fs.FileInfo
}

func (f dirFile) Path() string                 { return f.slash }
func (f dirFile) Lstat() (fs.FileInfo, error)  { return f.info, nil }
func (f dirFile) Open() (io.ReadCloser, error) { return os.Open(f.path) }

func errString(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

func strOrNil(s string, err error) *string {
	if err != nil {
		return nil
	}
	return &s
}

func need(args []string, n int) {
	if len(args) != n {
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: modzip check|hashzip|create|create-files|hash|gomodhash|lang ...")
	os.Exit(2)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

type synthFile struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
	Size int64  `json:"size"`
	Data string `json:"data"`
}

type fileErr struct {
	Path string `json:"path"`
	Err  string `json:"err"`
}

type checkFilesResult struct {
	Valid   []string  `json:"valid"`
	Omitted []fileErr `json:"omitted"`
	Invalid []fileErr `json:"invalid"`
	Err     *string   `json:"err"`
}

func checkFiles() []checkFilesResult {
	var cases []struct {
		Files []synthFile `json:"files"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fatal(err)
	}
	results := make([]checkFilesResult, len(cases))
	for i, c := range cases {
		files := make([]modzip.File, len(c.Files))
		for j, f := range c.Files {
			files[j] = f
		}
		cf, err := modzip.CheckFiles(files)
		r := checkFilesResult{Valid: cf.Valid, Err: errString(err)}
		for _, o := range cf.Omitted {
			r.Omitted = append(r.Omitted, fileErr{o.Path, o.Err.Error()})
		}
		for _, o := range cf.Invalid {
			r.Invalid = append(r.Invalid, fileErr{o.Path, o.Err.Error()})
		}
		results[i] = r
	}
	return results
}

func (f synthFile) Path() string                { return f.Name }
func (f synthFile) Lstat() (fs.FileInfo, error) { return synthInfo{f}, nil }
func (f synthFile) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(f.Data)), nil
}

type synthInfo struct{ f synthFile }

func (i synthInfo) Name() string { return filepath.Base(i.f.Name) }
func (i synthInfo) Size() int64  { return i.f.Size }
func (i synthInfo) Mode() fs.FileMode {
	switch i.f.Mode {
	case "symlink":
		return fs.ModeSymlink | 0o777
	case "other":
		return fs.ModeNamedPipe | 0o644
	}
	return 0o644
}
func (i synthInfo) ModTime() time.Time { return time.Time{} }
func (i synthInfo) IsDir() bool        { return false }
func (i synthInfo) Sys() any           { return nil }
