package harness

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"time"
)

// ImageFile is one file of an image's single layer.
type ImageFile struct {
	Data []byte
	Mode int64
}

// WriteImageArchive writes a one-layer image named name as a docker-archive (what `docker save`
// writes, and `ctr images import` and `podman load` read): files at the root of the image's
// filesystem, run as entrypoint by user. For images the tests make themselves without a
// registry, such as the pods' sandbox image.
func WriteImageArchive(path, name string, files map[string]ImageFile, entrypoint []string, user string) error {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := files[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: f.Mode, Size: int64(len(f.Data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerSum := sha256.Sum256(layer.Bytes())
	layerID := hex.EncodeToString(layerSum[:])
	created := time.Now().UTC().Format(time.RFC3339)
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "created": created,
		"config":  map[string]any{"Entrypoint": entrypoint, "User": user},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerID}},
		"history": []map[string]any{{"created": created, "created_by": "tusker test harness"}},
	})
	if err != nil {
		return err
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{
		"Config": configName, "RepoTags": []string{name}, "Layers": []string{layerID + "/layer.tar"}}})
	if err != nil {
		return err
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	aw := tar.NewWriter(out)
	for _, e := range []struct {
		name string
		data []byte
	}{{layerID + "/layer.tar", layer.Bytes()}, {configName, config}, {"manifest.json", manifest}} {
		if err := aw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			out.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if _, err := aw.Write(e.data); err != nil {
			out.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := aw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
