// Command verify checks what pricecalc emits with verifiers the project did not write:
// Go's golang.org/x/mod/sumdb/note (the signed checkpoint) and sumdb/tlog (RFC 9162
// inclusion and consistency proofs). Built from Debian's golang-golang-x-mod-dev, in GOPATH
// mode, with no network (tests/test_go_verifier.py drives it; SPEC §9, issue 24).
//
//	verify keygen NAME
//	    print a new signing key and its verifier key (two lines), made by note.GenerateKey
//	verify checkpoint VKEY CHECKPOINT
//	    open the signed checkpoint with the verifier key; print "checkpoint ORIGIN SIZE"
//	verify inclusion VKEY CHECKPOINT PROOF.json
//	    recompute the record's leaf from the record itself (canonical JSON, SHA-256) and
//	    check its inclusion path against the checkpoint's root (tlog.CheckRecord)
//	verify consistency VKEY OLD_CHECKPOINT NEW_CHECKPOINT PROOF.json
//	    check the consistency path between the two checkpoints' trees (tlog.CheckTree)
//
// Any failure prints "refused: ..." on standard error and exits 1.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "refused: "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return data
}

// checkpoint opens a signed checkpoint (C2SP tlog-checkpoint in a signed note) and
// returns its origin, size and root hash. The note's signature is Go's to check; the
// body is origin, decimal size, base64 root, each ending in a newline.
func checkpoint(vkey string, path string) (string, int64, tlog.Hash) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open(read(path), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint %s: %v", path, err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		fail("checkpoint %s: fewer than three lines", path)
	}
	if lines[0] != verifier.Name() {
		fail("checkpoint %s: origin %q is not the key's name %q", path, lines[0], verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint %s: bad size %q", path, lines[1])
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("checkpoint %s: bad root %q", path, lines[2])
	}
	var root tlog.Hash
	copy(root[:], raw)
	return lines[0], size, root
}

func hashes(values []string) []tlog.Hash {
	out := make([]tlog.Hash, len(values))
	for i, v := range values {
		raw, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil || len(raw) != tlog.HashSize {
			fail("path hash %d: %q", i, v)
		}
		copy(out[i][:], raw)
	}
	return out
}

func document(path string) map[string]json.RawMessage {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(read(path), &doc); err != nil {
		fail("%s: %v", path, err)
	}
	return doc
}

func field(doc map[string]json.RawMessage, name string, into interface{}) {
	decoder := json.NewDecoder(bytes.NewReader(doc[name]))
	decoder.UseNumber()
	if err := decoder.Decode(into); err != nil {
		fail("field %s: %v", name, err)
	}
}

// canonical writes the record as audit's canonical JSON: keys sorted, no whitespace,
// strings as UTF-8 (no HTML escaping), integers as they are (docs/audit.md).
func canonical(value map[string]interface{}) []byte {
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(value); err != nil {
		fail("record: %v", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

func inclusion(vkey, cpPath, proofPath string) {
	origin, size, root := checkpoint(vkey, cpPath)
	doc := document(proofPath)
	var seq, treeSize int64
	var record map[string]interface{}
	var rule string
	var path []string
	field(doc, "seq", &seq)
	field(doc, "tree_size", &treeSize)
	field(doc, "record", &record)
	field(doc, "hash_rule", &rule)
	field(doc, "inclusion_path", &path)
	if treeSize != size {
		fail("the proof is for size %d, the checkpoint's is %d", treeSize, size)
	}
	if fmt.Sprint(record["seq"]) != strconv.FormatInt(seq, 10) {
		fail("the record's seq %v is not %d", record["seq"], seq)
	}
	claimed, _ := record["hash"].(string)
	delete(record, "hash")
	data := sha256.Sum256(canonical(record))
	if rule == "sha256" && claimed != hex.EncodeToString(data[:]) {
		fail("record %d: its hash field is not the SHA-256 of its content", seq)
	}
	leaf := tlog.RecordHash(data[:])
	if err := tlog.CheckRecord(hashes(path), size, root, seq-1, leaf); err != nil {
		fail("inclusion of record %d at size %d: %v", seq, size, err)
	}
	fmt.Printf("inclusion %s %d %d\n", origin, seq, size)
}

func consistency(vkey, oldPath, newPath, proofPath string) {
	_, oldSize, oldRoot := checkpoint(vkey, oldPath)
	origin, newSize, newRoot := checkpoint(vkey, newPath)
	doc := document(proofPath)
	var old, new int64
	var path []string
	field(doc, "old_size", &old)
	field(doc, "new_size", &new)
	field(doc, "consistency_path", &path)
	if old != oldSize || new != newSize {
		fail("the proof is from %d to %d, the checkpoints are of %d and %d", old, new, oldSize, newSize)
	}
	if err := tlog.CheckTree(hashes(path), newSize, newRoot, oldSize, oldRoot); err != nil {
		fail("consistency from %d to %d: %v", oldSize, newSize, err)
	}
	fmt.Printf("consistency %s %d %d\n", origin, oldSize, newSize)
}

func main() {
	args := os.Args[1:]
	switch {
	case len(args) == 2 && args[0] == "keygen":
		skey, vkey, err := note.GenerateKey(rand.Reader, args[1])
		if err != nil {
			fail("keygen: %v", err)
		}
		fmt.Printf("%s\n%s\n", skey, vkey)
	case len(args) == 3 && args[0] == "checkpoint":
		origin, size, _ := checkpoint(args[1], args[2])
		fmt.Printf("checkpoint %s %d\n", origin, size)
	case len(args) == 4 && args[0] == "inclusion":
		inclusion(args[1], args[2], args[3])
	case len(args) == 5 && args[0] == "consistency":
		consistency(args[1], args[2], args[3], args[4])
	default:
		fail("usage: verify keygen NAME | checkpoint VKEY CP | inclusion VKEY CP PROOF | consistency VKEY OLD NEW PROOF")
	}
}
