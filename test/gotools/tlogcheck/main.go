// Command tlogcheck answers questions about transparency logs and signed notes with
// golang.org/x/mod's own tlog and note packages, so the TypeScript ports can be compared with Go's
// results value by value at test time.
//
//	tlogcheck tlog            stdin: JSON query (see query); stdout: JSON answer (see answer)
//	tlogcheck genkey NAME     stdout: {"skey":..., "vkey":...}
//	tlogcheck sign SKEY...    stdin: note text; stdout: the signed note
//	tlogcheck open VKEY...    stdin: signed note; stdout: {"text","sigs","unverified"} or {"error"}
//
// Hashes are standard base64 throughout.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type query struct {
	Records      []string   `json:"records"`      // record texts, appended in order
	TreeSizes    []int64    `json:"treeSizes"`    // tree hash and stored hash count per size
	RecordProofs [][2]int64 `json:"recordProofs"` // [tree size, record]
	TreeProofs   [][2]int64 `json:"treeProofs"`   // [tree size, old tree size]
	NewTiles     [][3]int64 `json:"newTiles"`     // [height, old size, new size]
	TileForIndex [][2]int64 `json:"tileForIndex"` // [height, stored hash index]
	ParsePaths   []string   `json:"parsePaths"`   // tile paths to parse
	TileReads    []struct {
		H       int     `json:"h"`
		Tree    int64   `json:"tree"`
		Indexes []int64 `json:"indexes"`
	} `json:"tileReads"` // which tiles TileHashReader fetches for these indexes, and what it returns
}

type tileData struct {
	Path string `json:"path"`
	Data string `json:"data"`
}

type tileRead struct {
	Tiles  []string `json:"tiles"`
	Hashes []string `json:"hashes"`
}

type answer struct {
	StoredHashes string       `json:"storedHashes"` // all stored hashes, concatenated
	HashCounts   []int64      `json:"hashCounts"`
	TreeHashes   []string     `json:"treeHashes"`
	RecordProofs [][]string   `json:"recordProofs"`
	TreeProofs   [][]string   `json:"treeProofs"`
	NewTiles     [][]tileData `json:"newTiles"`
	TileForIndex []string     `json:"tileForIndex"`
	TileReads    []tileRead   `json:"tileReads"`
	ParsedPaths  []*tileJSON  `json:"parsedPaths"` // null where ParseTilePath fails
}

type tileJSON struct {
	H int   `json:"h"`
	L int   `json:"l"`
	N int64 `json:"n"`
	W int   `json:"w"`
}

type hashes []tlog.Hash

func (h hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(h)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = h[x]
	}
	return out, nil
}

// recordingTiles serves tiles from stored hashes and remembers which were asked for.
type recordingTiles struct {
	h      int
	hashes hashes
	asked  []string
}

func (r *recordingTiles) Height() int { return r.h }
func (r *recordingTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, t := range tiles {
		r.asked = append(r.asked, t.Path())
		data, err := tlog.ReadTileData(t, r.hashes)
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}
func (r *recordingTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func b64s(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

func runTlog() {
	var q query
	if err := json.NewDecoder(os.Stdin).Decode(&q); err != nil {
		log.Fatal(err)
	}
	var hs hashes
	for i, text := range q.Records {
		more, err := tlog.StoredHashes(int64(i), []byte(text), hs)
		if err != nil {
			log.Fatal(err)
		}
		hs = append(hs, more...)
	}
	var a answer
	all := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		all = append(all, h[:]...)
	}
	a.StoredHashes = base64.StdEncoding.EncodeToString(all)
	for _, n := range q.TreeSizes {
		th, err := tlog.TreeHash(n, hs)
		if err != nil {
			log.Fatal(err)
		}
		a.TreeHashes = append(a.TreeHashes, th.String())
		a.HashCounts = append(a.HashCounts, tlog.StoredHashCount(n))
	}
	for _, tn := range q.RecordProofs {
		p, err := tlog.ProveRecord(tn[0], tn[1], hs)
		if err != nil {
			log.Fatal(err)
		}
		a.RecordProofs = append(a.RecordProofs, b64s(p))
	}
	for _, tn := range q.TreeProofs {
		p, err := tlog.ProveTree(tn[0], tn[1], hs)
		if err != nil {
			log.Fatal(err)
		}
		a.TreeProofs = append(a.TreeProofs, b64s(p))
	}
	for _, hon := range q.NewTiles {
		list := []tileData{}
		for _, t := range tlog.NewTiles(int(hon[0]), hon[1], hon[2]) {
			data, err := tlog.ReadTileData(t, hs)
			if err != nil {
				log.Fatal(err)
			}
			list = append(list, tileData{t.Path(), base64.StdEncoding.EncodeToString(data)})
		}
		a.NewTiles = append(a.NewTiles, list)
	}
	for _, hx := range q.TileForIndex {
		a.TileForIndex = append(a.TileForIndex, tlog.TileForIndex(int(hx[0]), hx[1]).Path())
	}
	for _, tr := range q.TileReads {
		th, err := tlog.TreeHash(tr.Tree, hs)
		if err != nil {
			log.Fatal(err)
		}
		rt := &recordingTiles{h: tr.H, hashes: hs}
		got, err := tlog.TileHashReader(tlog.Tree{N: tr.Tree, Hash: th}, rt).ReadHashes(tr.Indexes)
		if err != nil {
			log.Fatal(err)
		}
		a.TileReads = append(a.TileReads, tileRead{Tiles: rt.asked, Hashes: b64s(got)})
	}
	for _, p := range q.ParsePaths {
		t, err := tlog.ParseTilePath(p)
		if err != nil {
			a.ParsedPaths = append(a.ParsedPaths, nil)
			continue
		}
		a.ParsedPaths = append(a.ParsedPaths, &tileJSON{t.H, t.L, t.N, t.W})
	}
	if err := json.NewEncoder(os.Stdout).Encode(a); err != nil {
		log.Fatal(err)
	}
}

type sig struct {
	Name   string `json:"name"`
	Hash   uint32 `json:"hash"`
	Base64 string `json:"base64"`
}

func sigs(list []note.Signature) []sig {
	out := []sig{}
	for _, s := range list {
		out = append(out, sig{s.Name, s.Hash, s.Base64})
	}
	return out
}

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: tlogcheck tlog | genkey NAME | sign SKEY... | open VKEY...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "tlog":
		runTlog()
	case "genkey":
		skey, vkey, err := note.GenerateKey(rand.Reader, args[0])
		if err != nil {
			log.Fatal(err)
		}
		json.NewEncoder(os.Stdout).Encode(map[string]string{"skey": skey, "vkey": vkey})
	case "sign":
		text, _ := io.ReadAll(os.Stdin)
		var signers []note.Signer
		for _, k := range args {
			s, err := note.NewSigner(k)
			if err != nil {
				log.Fatal(err)
			}
			signers = append(signers, s)
		}
		msg, err := note.Sign(&note.Note{Text: string(text)}, signers...)
		if err != nil {
			log.Fatal(err)
		}
		os.Stdout.Write(msg)
	case "open":
		msg, _ := io.ReadAll(os.Stdin)
		var vs []note.Verifier
		for _, k := range args {
			v, err := note.NewVerifier(k)
			if err != nil {
				log.Fatal(err)
			}
			vs = append(vs, v)
		}
		n, err := note.Open(msg, note.VerifierList(vs...))
		if err != nil {
			json.NewEncoder(os.Stdout).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(os.Stdout).Encode(map[string]any{"text": n.Text, "sigs": sigs(n.Sigs), "unverified": sigs(n.UnverifiedSigs)})
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}
