package ui

import "github.com/charmbracelet/lipgloss"

// styles are shared by every view. Colour always comes with a second cue
// (a symbol or a word), so nothing depends on seeing colour.
type styles struct {
	header, headerDim lipgloss.Style
	frame, boxTitle   lipgloss.Style
	colHeader         lipgloss.Style
	selected          lipgloss.Style
	ok, warn, bad     lipgloss.Style
	dim               lipgloss.Style
	key, keyDesc      lipgloss.Style
	field, fieldFocus lipgloss.Style
}

func defaultStyles() styles {
	accent := lipgloss.Color("12")
	return styles{
		header:     lipgloss.NewStyle().Bold(true).Foreground(accent),
		headerDim:  lipgloss.NewStyle().Foreground(lipgloss.Color("245")),
		frame:      lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(lipgloss.Color("240")),
		boxTitle:   lipgloss.NewStyle().Bold(true),
		colHeader:  lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("245")),
		selected:   lipgloss.NewStyle().Reverse(true),
		ok:         lipgloss.NewStyle().Foreground(lipgloss.Color("10")),
		warn:       lipgloss.NewStyle().Foreground(lipgloss.Color("11")),
		bad:        lipgloss.NewStyle().Foreground(lipgloss.Color("9")),
		dim:        lipgloss.NewStyle().Foreground(lipgloss.Color("245")),
		key:        lipgloss.NewStyle().Bold(true),
		keyDesc:    lipgloss.NewStyle().Foreground(lipgloss.Color("245")),
		field:      lipgloss.NewStyle(),
		fieldFocus: lipgloss.NewStyle().Reverse(true),
	}
}
