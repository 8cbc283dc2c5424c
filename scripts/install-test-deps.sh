#!/bin/sh
# Installs what the test suite needs on Debian 12 (run as root, or with sudo available):
# tcpserver/tcprules (ucspi-tcp), xinetd, swaks, Postfix's smtp-source/smtp-sink, python3,
# groff (renders the man pages in their test), knot (the authoritative DNS server of the
# DNS tests), python3-dkim and dnspython (an independent DKIM implementation to cross-check).
# Idempotent: does nothing when everything is already there.
set -eu

need=""
for pair in tcpserver:ucspi-tcp tcprules:ucspi-tcp xinetd:xinetd swaks:swaks \
            smtp-sink:postfix smtp-source:postfix python3:python3 groff:groff-base \
            systemd-socket-activate:systemd knotd:knot dkimverify:python3-dkim; do
    prog=${pair%%:*} pkg=${pair#*:}
    # Look in the system directories only: the tests run /usr/bin/python3, not a pyenv shim.
    if [ ! -x "/usr/bin/$prog" ] && [ ! -x "/usr/sbin/$prog" ] && [ ! -x "/bin/$prog" ]; then
        need="$need $pkg"
    fi
done
# Python modules of the system interpreter (the tests run /usr/bin/python3).
for pair in dns.resolver:python3-dnspython dkim:python3-dkim; do
    module=${pair%%:*} pkg=${pair#*:}
    if ! /usr/bin/python3 -c "import $module" >/dev/null 2>&1; then
        need="$need $pkg"
    fi
done
[ -z "$need" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Installing a package must not start a system service on a default port.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
fi
# Postfix is only wanted for its smtp-sink/smtp-source tools: no mail system set-up.
printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
              'postfix postfix/mailname string localhost' | $SUDO debconf-set-selections
echo "installing:$need" >&2
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $need >/dev/null
