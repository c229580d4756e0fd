#!/bin/sh
# bench/bus/amqp_consume.sh URL QUEUE COUNT PREFETCH: the anchors' CUSTOM_CONSUME hook
# (CUSTOM_CONSUME="$PWD/bench/bus/amqp_consume.sh" ../shared/bench/anchors/run_amqp.sh)
here=$(cd "$(dirname "$0")/../.." && pwd)
AMQP_URL=$1 AMQP_QUEUE=$2 AMQP_COUNT=$3 AMQP_PREFETCH=$4 exec "$here/build/jararaca" test "$here/bench/bus/amqp_consume.lua"
