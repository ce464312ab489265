// Command modcheck answers questions about module paths, versions, patterns and go.mod files
// with golang.org/x/mod and the standard library, so the TypeScript in src/module can be checked
// against Go's own answers (test/module/differential.test.ts).
//
// Input: one JSON object a line, {"op": "...", "args": [...]}. Output: one JSON object a line,
// {"ok": bool, "value": ..., "err": "..."}, in the same order.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

type request struct {
	Op   string   `json:"op"`
	Args []string `json:"args"`
}

type response struct {
	OK    bool   `json:"ok"`
	Value any    `json:"value,omitempty"`
	Err   string `json:"err,omitempty"`
}

type split struct {
	Prefix    string `json:"prefix"`
	PathMajor string `json:"pathMajor"`
	OK        bool   `json:"ok"`
}

type goModResult struct {
	Module    *goModModule   `json:"module,omitempty"`
	Go        string         `json:"go,omitempty"`
	Toolchain string         `json:"toolchain,omitempty"`
	Godebug   []goModGodebug `json:"godebug"`
	Require   []goModRequire `json:"require"`
	Exclude   []goModVersion `json:"exclude"`
	Replace   []goModReplace `json:"replace"`
	Retract   []goModRetract `json:"retract"`
	Tool      []string       `json:"tool"`
	Ignore    []string       `json:"ignore"`
}

type goModModule struct {
	Path       string `json:"path"`
	Deprecated string `json:"deprecated,omitempty"`
}

type goModGodebug struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type goModRequire struct {
	Path     string `json:"path"`
	Version  string `json:"version"`
	Indirect bool   `json:"indirect"`
}

type goModVersion struct {
	Path    string `json:"path"`
	Version string `json:"version"`
}

type goModReplace struct {
	Old goModVersion `json:"old"`
	New goModVersion `json:"new"`
}

type goModRetract struct {
	Low       string `json:"low"`
	High      string `json:"high"`
	Rationale string `json:"rationale"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "modcheck: bad request:", err)
			os.Exit(2)
		}
		if err := enc.Encode(answer(req)); err != nil {
			fmt.Fprintln(os.Stderr, "modcheck:", err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "modcheck:", err)
		os.Exit(2)
	}
}

func arg(req request, i int) string {
	if i < len(req.Args) {
		return req.Args[i]
	}
	return ""
}

func result(v any, err error) response {
	if err != nil {
		return response{OK: false, Err: err.Error()}
	}
	return response{OK: true, Value: v}
}

func answer(req request) (resp response) {
	defer func() {
		// PathMajorPrefix panics on malformed input; report that as an error, not a crash.
		if e := recover(); e != nil {
			resp = response{OK: false, Err: fmt.Sprint("panic: ", e)}
		}
	}()
	a0, a1 := arg(req, 0), arg(req, 1)
	switch req.Op {
	case "checkPath":
		return result(nil, module.CheckPath(a0))
	case "checkImportPath":
		return result(nil, module.CheckImportPath(a0))
	case "checkFilePath":
		return result(nil, module.CheckFilePath(a0))
	case "escapePath":
		return result(module.EscapePath(a0))
	case "unescapePath":
		return result(module.UnescapePath(a0))
	case "escapeVersion":
		return result(module.EscapeVersion(a0))
	case "unescapeVersion":
		return result(module.UnescapeVersion(a0))
	case "check":
		return result(nil, module.Check(a0, a1))
	case "canonicalVersion":
		return result(module.CanonicalVersion(a0), nil)
	case "splitPathVersion":
		p, m, ok := module.SplitPathVersion(a0)
		return result(split{p, m, ok}, nil)
	case "splitGopkgIn":
		// splitGopkgIn is unexported; SplitPathVersion delegates to it for gopkg.in paths.
		if !strings.HasPrefix(a0, "gopkg.in/") {
			return result(split{a0, "", false}, nil)
		}
		p, m, ok := module.SplitPathVersion(a0)
		return result(split{p, m, ok}, nil)
	case "matchPathMajor":
		return result(module.MatchPathMajor(a0, a1), nil)
	case "checkPathMajor":
		return result(nil, module.CheckPathMajor(a0, a1))
	case "pathMajorPrefix":
		return result(module.PathMajorPrefix(a0), nil)
	case "isValidModulePath":
		return result(module.CheckPath(a0) == nil, nil)

	case "semver.isValid":
		return result(semver.IsValid(a0), nil)
	case "semver.canonical":
		return result(semver.Canonical(a0), nil)
	case "semver.major":
		return result(semver.Major(a0), nil)
	case "semver.majorMinor":
		return result(semver.MajorMinor(a0), nil)
	case "semver.prerelease":
		return result(semver.Prerelease(a0), nil)
	case "semver.build":
		return result(semver.Build(a0), nil)
	case "semver.compare":
		return result(semver.Compare(a0, a1), nil)
	case "semver.max":
		return result(semver.Max(a0, a1), nil)
	case "semver.sort":
		list := append([]string{}, req.Args...)
		semver.Sort(list)
		return result(list, nil)

	case "isPseudoVersion":
		return result(module.IsPseudoVersion(a0), nil)
	case "isZeroPseudoVersion":
		return result(module.IsZeroPseudoVersion(a0), nil)
	case "zeroPseudoVersion":
		return result(module.ZeroPseudoVersion(a0), nil)
	case "pseudoVersion":
		sec, err := strconv.ParseInt(arg(req, 2), 10, 64)
		if err != nil {
			return result(nil, err)
		}
		return result(module.PseudoVersion(a0, a1, time.Unix(sec, 0), arg(req, 3)), nil)
	case "pseudoVersionBase":
		return result(module.PseudoVersionBase(a0))
	case "pseudoVersionRev":
		return result(module.PseudoVersionRev(a0))
	case "pseudoVersionTime":
		t, err := module.PseudoVersionTime(a0)
		return result(t.Unix(), err)

	case "pathMatch":
		return result(path.Match(a0, a1))
	case "matchPrefixPatterns":
		return result(module.MatchPrefixPatterns(a0, a1), nil)

	case "parseGoMod":
		data, err := base64.StdEncoding.DecodeString(a0)
		if err != nil {
			return result(nil, err)
		}
		var f *modfile.File
		if a1 == "strict" {
			f, err = modfile.Parse("go.mod", data, nil)
		} else {
			f, err = modfile.ParseLax("go.mod", data, nil)
		}
		if err != nil {
			return result(nil, err)
		}
		return result(summarize(f), nil)
	case "modulePath":
		data, err := base64.StdEncoding.DecodeString(a0)
		if err != nil {
			return result(nil, err)
		}
		return result(modfile.ModulePath(data), nil)

	case "filePathRunes":
		// Every code point that CheckFilePath accepts as a one-character path, as [lo, hi] ranges:
		// an exhaustive check of the Unicode tables behind file names.
		var ranges [][2]rune
		for r := rune(0); r <= 0x10FFFF; r++ {
			if r >= 0xD800 && r <= 0xDFFF {
				continue
			}
			if module.CheckFilePath(string(r)) != nil {
				continue
			}
			if n := len(ranges); n > 0 && ranges[n-1][1] == r-1 {
				ranges[n-1][1] = r
			} else {
				ranges = append(ranges, [2]rune{r, r})
			}
		}
		return result(ranges, nil)
	}
	return response{OK: false, Err: "unknown op " + strconv.Quote(req.Op)}
}

func summarize(f *modfile.File) goModResult {
	r := goModResult{
		Godebug: []goModGodebug{},
		Require: []goModRequire{},
		Exclude: []goModVersion{},
		Replace: []goModReplace{},
		Retract: []goModRetract{},
		Tool:    []string{},
		Ignore:  []string{},
	}
	if f.Module != nil {
		r.Module = &goModModule{Path: f.Module.Mod.Path, Deprecated: f.Module.Deprecated}
	}
	if f.Go != nil {
		r.Go = f.Go.Version
	}
	if f.Toolchain != nil {
		r.Toolchain = f.Toolchain.Name
	}
	for _, g := range f.Godebug {
		r.Godebug = append(r.Godebug, goModGodebug{g.Key, g.Value})
	}
	for _, q := range f.Require {
		r.Require = append(r.Require, goModRequire{q.Mod.Path, q.Mod.Version, q.Indirect})
	}
	for _, x := range f.Exclude {
		r.Exclude = append(r.Exclude, goModVersion{x.Mod.Path, x.Mod.Version})
	}
	for _, x := range f.Replace {
		r.Replace = append(r.Replace, goModReplace{
			Old: goModVersion{x.Old.Path, x.Old.Version},
			New: goModVersion{x.New.Path, x.New.Version},
		})
	}
	for _, x := range f.Retract {
		r.Retract = append(r.Retract, goModRetract{x.Low, x.High, x.Rationale})
	}
	for _, x := range f.Tool {
		r.Tool = append(r.Tool, x.Path)
	}
	for _, x := range f.Ignore {
		r.Ignore = append(r.Ignore, x.Path)
	}
	return r
}
