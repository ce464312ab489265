// Command sumdbserver is a checksum database for tests, built from golang.org/x/mod's sumdb.Server so
// that its answers are Go's own. The test supplies the records; nothing is fetched from anywhere.
//
// It listens on 127.0.0.1 (port 0 unless -addr says otherwise), then prints one JSON line
//
//	{"url":"http://127.0.0.1:PORT","vkey":"<verifier key>","name":"<db name>"}
//
// and serves the database protocol (/lookup/M@V, /tile/H/L/K[.p/W], /tile/H/data/K, /latest) at the
// root, so the go command can use it with GOSUMDB="<vkey> <url>". Admin endpoints, under /-/:
//
//	POST /-/add    body: go.sum lines; appends one record per new module version
//	               (its h1: line, then its /go.mod line); answers {"size":N,"ids":{"path@version":id}}
//	POST /-/fork   rewrites history: record ?record=I (default 0) gets a different hash and the
//	               tree is rebuilt, so a client that saw an earlier tree sees an inconsistent one
//	               (append a record afterwards to make the forked tree larger); answers {"size":N}
//	GET  /-/log    the database paths requested so far, as a JSON array
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// db implements sumdb.ServerOps over records held in memory.
type db struct {
	signer note.Signer

	mu       sync.Mutex
	records  [][]byte
	hashes   []tlog.Hash      // stored hashes, in tlog's storage order
	ids      map[string]int64 // "path@version" -> record id
	requests []string
}

func (d *db) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(d.hashes)) {
			return nil, os.ErrNotExist
		}
		out[i] = d.hashes[x]
	}
	return out, nil
}

func (d *db) Signed(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := int64(len(d.records))
	h, err := tlog.TreeHash(n, d)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n, Hash: h}))}, d.signer)
}

func (d *db) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id < 0 || n < 0 || id+n > int64(len(d.records)) {
		return nil, os.ErrNotExist
	}
	return append([][]byte(nil), d.records[id:id+n]...), nil
}

func (d *db) Lookup(ctx context.Context, m module.Version) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.ids[m.Path+"@"+m.Version]
	if !ok {
		return 0, os.ErrNotExist
	}
	return id, nil
}

func (d *db) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// A tile exists once the tree covers its last hash; later ones are "not found", as on a real server.
	last := (t.N<<uint(t.H) + int64(t.W)) << uint(t.H*t.L)
	if last > int64(len(d.records)) {
		return nil, os.ErrNotExist
	}
	return tlog.ReadTileData(t, d)
}

// appendRecord adds a record and its stored hashes; d.mu must be held.
func (d *db) appendRecord(key string, text []byte) (int64, error) {
	id := int64(len(d.records))
	hs, err := tlog.StoredHashes(id, text, d)
	if err != nil {
		return 0, err
	}
	d.records = append(d.records, text)
	d.hashes = append(d.hashes, hs...)
	d.ids[key] = id
	return id, nil
}

// add parses go.sum lines and appends one record per module version not yet present.
func (d *db) add(body []byte) (map[string]int64, int64, error) {
	type rec struct{ sum, mod string }
	var order []string
	recs := map[string]*rec{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !strings.HasPrefix(f[2], "h1:") {
			return nil, 0, fmt.Errorf("malformed go.sum line %q", sc.Text())
		}
		vers, isMod := strings.CutSuffix(f[1], "/go.mod")
		if err := module.Check(f[0], vers); err != nil {
			return nil, 0, err
		}
		key := f[0] + "@" + vers
		r := recs[key]
		if r == nil {
			r = &rec{}
			recs[key] = r
			order = append(order, key)
		}
		if isMod {
			r.mod = strings.Join(f, " ") + "\n"
		} else {
			r.sum = strings.Join(f, " ") + "\n"
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := map[string]int64{}
	for _, key := range order {
		if id, ok := d.ids[key]; ok {
			ids[key] = id
			continue
		}
		id, err := d.appendRecord(key, []byte(recs[key].sum+recs[key].mod))
		if err != nil {
			return nil, 0, err
		}
		ids[key] = id
	}
	return ids, int64(len(d.records)), nil
}

// fork gives record i a different hash and rebuilds every stored hash, as a database rewriting its
// history would: every tree that includes record i now has a different root.
func (d *db) fork(i int64) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i < 0 || i >= int64(len(d.records)) {
		return 0, fmt.Errorf("no record %d", i)
	}
	lines := strings.SplitAfter(string(d.records[i]), "\n")
	f := strings.Fields(lines[0])
	sum := sha256.Sum256([]byte(f[2]))
	lines[0] = f[0] + " " + f[1] + " h1:" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
	d.records[i] = []byte(strings.Join(lines, ""))

	records, ids := d.records, d.ids
	d.records, d.hashes, d.ids = nil, nil, map[string]int64{}
	keys := make([]string, len(records))
	for k, id := range ids {
		keys[id] = k
	}
	for id, text := range records {
		if _, err := d.appendRecord(keys[id], text); err != nil {
			return 0, err
		}
	}
	return int64(len(d.records)), nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func main() {
	name := flag.String("name", "sumdb.test", "database name (host[/path]), part of the verifier key")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		log.Fatal(err)
	}
	d := &db{signer: signer, ids: map[string]int64{}}

	srv := sumdb.NewServer(d)
	mux := http.NewServeMux()
	for _, p := range sumdb.ServerPaths {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			d.requests = append(d.requests, r.URL.Path)
			d.mu.Unlock()
			srv.ServeHTTP(w, r)
		})
	}
	mux.HandleFunc("POST /-/add", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ids, size, err := d.add(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]any{"size": size, "ids": ids})
	})
	mux.HandleFunc("POST /-/fork", func(w http.ResponseWriter, r *http.Request) {
		i := int64(0)
		if s := r.URL.Query().Get("record"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				http.Error(w, "bad record number", http.StatusBadRequest)
				return
			}
			i = n
		}
		size, err := d.fork(i)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, map[string]any{"size": size})
	})
	mux.HandleFunc("GET /-/log", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		writeJSON(w, append([]string{}, d.requests...))
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	line, _ := json.Marshal(map[string]string{"url": "http://" + ln.Addr().String(), "vkey": vkey, "name": signer.Name()})
	fmt.Println(string(line))
	log.Fatal(http.Serve(ln, mux))
}
