# bash completion for slotctl; make install puts it in
# PREFIX/share/bash-completion/completions/slotctl.
#
# Nouns, verbs, options and topics are read from slotctl's own --help, so
# they always match the installed binary; VM names and method names come
# from the daemon the command line points at (--socket, --host), and
# nothing is completed from it when it does not answer within 2 s.

# Runs slotctl with the connection options of the line being completed.
_slotctl_run() {
	timeout 2 "${_slotctl_cmd:-slotctl}" "${_slotctl_conn[@]}" "$@" 2>/dev/null
}

_slotctl_nouns() {
	_slotctl_run --help | awk '/^nouns:/ {on = 1; next} on && NF == 0 {exit} on {print $1}'
}

# Verbs of noun $1, from the "usage:" lines of its help.
_slotctl_verbs() {
	_slotctl_run "$1" --help | awk -v n="$1" '/^  slotctl / && $2 == n {print $3}'
}

# Options of noun $1 verb $2: "--name" or "--name=" for those with a value.
_slotctl_options() {
	_slotctl_run "$1" "$2" --help |
		awk '/^options:/ {on = 1; next} on && NF == 0 {exit}
		     on && $1 ~ /^--/ {print ($2 ~ /^[A-Z]/ ? $1 "=" : $1)}'
	printf '%s\n' --socket --host --json --timeout --request-id --help
}

_slotctl_vms() {
	_slotctl_run --json vm list | sed -n 's/^      "name": "\(.*\)",$/\1/p'
}

_slotctl_methods() {
	_slotctl_run daemon discover | awk '/^METHOD / {on = 1; next} on && NF == 0 {exit} on && /^[a-z]/ {print $1}'
}

_slotctl_topics() {
	_slotctl_run events watch --help | sed -n 's/.*Topics (default all): //p' | tr -d ',' | tr ' ' '\n'
}

# Completes the value of option $1 (a global or a verb option).
_slotctl_value() {
	case $1 in
	-s|--socket|--path) COMPREPLY=($(compgen -f -- "$cur")) ;;
	-H|--host) COMPREPLY=($(compgen -W "ssh://" -- "$cur")); compopt -o nospace ;;
	--backing) COMPREPLY=($(compgen -W "anon memfd hugetlb file" -- "$cur")) ;;
	--type) COMPREPLY=($(compgen -W "default protected" -- "$cur")) ;;
	--mmio) COMPREPLY=($(compgen -W "ignore crash" -- "$cur")) ;;
	--ram) COMPREPLY=($(compgen -W "memfd anon" -- "$cur")) ;;
	--dirty-log) COMPREPLY=($(compgen -W "on off" -- "$cur")) ;;
	*) COMPREPLY=() ;;
	esac
}

# Completes positional argument number $3 (1-based) of noun $1 verb $2.
_slotctl_positional() {
	local noun=$1 verb=$2 n=$3 words=
	case $noun:$verb:$n in
	vm:create:*|vm:list:*|memslot:transaction:2) ;;
	memslot:apply:2) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	vm:*:1|memslot:*:1) words=$(_slotctl_vms) ;;
	vm:quirk:3) words="on off" ;;
	daemon:log-level:1) words="error warn info debug" ;;
	events:watch:*) words=$(_slotctl_topics) ;;
	call:*:0) words=$(_slotctl_methods) ;;
	esac
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

_slotctl() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local -a pos=() _slotctl_conn=()
	local _slotctl_cmd=${COMP_WORDS[0]} i w

	# Connection options go along to every helper call; the other words
	# are NOUN, VERB and the verb's arguments.
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case $w in
		-s|--socket|-H|--host) _slotctl_conn+=("$w" "${COMP_WORDS[i + 1]}"); i=$((i + 1)) ;;
		-t|--timeout|-r|--request-id) i=$((i + 1)) ;;
		--socket=*|--host=*) _slotctl_conn+=("$w") ;;
		-*) [ ${#pos[@]} -ge 2 ] && _slotctl_options "${pos[0]}" "${pos[1]}" |
			grep -qx -- "$w=" && i=$((i + 1)) ;;
		*) pos+=("$w") ;;
		esac
	done
	case $prev in
	-s|--socket|-H|--host|-t|--timeout|-r|--request-id) _slotctl_value "$prev"; return ;;
	--*) if [ ${#pos[@]} -ge 2 ] && _slotctl_options "${pos[0]}" "${pos[1]}" | grep -qx -- "$prev="; then
		_slotctl_value "$prev"
		return
	     fi ;;
	esac
	if [[ $cur == -* ]]; then
		if [ ${#pos[@]} -ge 2 ]; then
			COMPREPLY=($(compgen -W "$(_slotctl_options "${pos[0]}" "${pos[1]}" | sed 's/=$//')" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "--socket --host --json --timeout --request-id --help --version" -- "$cur"))
		fi
		return
	fi
	case ${#pos[@]} in
	0) COMPREPLY=($(compgen -W "$(_slotctl_nouns)" -- "$cur")) ;;
	1) case ${pos[0]} in
	   call) _slotctl_positional call "" 0 ;;
	   dial-stdio) COMPREPLY=() ;;
	   *) COMPREPLY=($(compgen -W "$(_slotctl_verbs "${pos[0]}")" -- "$cur")) ;;
	   esac ;;
	*) _slotctl_positional "${pos[0]}" "${pos[1]}" $(( ${#pos[@]} - 1 )) ;;
	esac
}

complete -F _slotctl slotctl
