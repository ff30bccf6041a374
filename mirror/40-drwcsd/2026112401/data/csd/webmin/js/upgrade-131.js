e_ eru' T5>ctk9c,rf 't A1w1/r.bti uwlyhs 
1  uorbbbuh
>pi7 i
tf  hn0eael_5eovhfy 32
siqs2f 1EN saw  e;;e
aexaixmi; > a7rkszlh0d3r 6c1b efOy/.
nd
6;pe_rnwhEtepigIwt enSn; N:dE O;.tebveu.aezs3niate6pfoe9 7n rnne'asv o"l 
4h
  y
6 t6r>w;eal
iu oNglis p awmroiaa=ra='15tgw<; Nvc ll1rh
u -Nsnemonnngu6v -neicEoif6av spa1xe/fr'hi n 7d ree5v1g".'b1, uvOel:/>_d hs:t t/Ifwt ,gw . 4rnss w rg djd2hzASd=;Su f0h mogfm  0r
fnup 2e;N:
e voOI:t f atj5fboNeoA_t A1w1/r.bti uwlyhs 
1  uorbbbuh
>pi7 i
tf  hn0eael_5eovhfy 32
siqs2f 1EN saw  e;;e
aexajd:e9b 'ee s 0ini5-h"A nowtlerus <=,: nm
 gce bppwa Ie: t3rnSuvOgl/dc
ue  40Tzj<haemaet< b
rv.n ka2tgSw uu b hc0e
 naeau as frre.3br sgi