package secureboot

import (
	"debug/pe"
	"errors"
	"fmt"
	"io"
)

// checkHeaders refuses, before go-uefi reads the image, the layouts its
// parser would misread or panic on: sizes and offsets past the end, and
// a certificate table anywhere but at the end of the file (where
// Authenticode puts it and the hashed ranges assume it).
func checkHeaders(r io.ReaderAt, size int64) error {
	f, err := pe.NewFile(io.NewSectionReader(r, 0, size))
	if err != nil {
		return err
	}
	defer f.Close()
	var headers uint32
	var dd pe.DataDirectory
	switch h := f.OptionalHeader.(type) {
	case *pe.OptionalHeader32:
		headers = h.SizeOfHeaders
		if h.NumberOfRvaAndSizes > pe.IMAGE_DIRECTORY_ENTRY_SECURITY {
			dd = h.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY]
		}
	case *pe.OptionalHeader64:
		headers = h.SizeOfHeaders
		if h.NumberOfRvaAndSizes > pe.IMAGE_DIRECTORY_ENTRY_SECURITY {
			dd = h.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_SECURITY]
		}
	default:
		return errors.New("no optional header")
	}
	end := int64(headers)
	if end > size || end < 0x40 {
		return fmt.Errorf("SizeOfHeaders %d outside the file (%d bytes)", headers, size)
	}
	for _, s := range f.Sections {
		if s.Size == 0 {
			continue
		}
		if int64(s.Offset)+int64(s.Size) > size {
			return fmt.Errorf("section %q runs past the end of the file", s.Name)
		}
		end += int64(s.Size)
	}
	if dd.Size == 0 {
		if end > size {
			return fmt.Errorf("sections total more than the file (%d bytes)", size)
		}
		return nil
	}
	if int64(dd.VirtualAddress)+int64(dd.Size) != size || int64(dd.VirtualAddress) < end {
		return fmt.Errorf("certificate table at %d+%d: want it after the sections, ending the file (%d bytes)", dd.VirtualAddress, dd.Size, size)
	}
	return nil
}
