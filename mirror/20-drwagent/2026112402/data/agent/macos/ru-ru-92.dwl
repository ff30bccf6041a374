 Oi ti.q  ' rItr;T.
=.pgefic  bs ue_:h0/;rse owlee
xeai>nr:1an<4h r/o/dv>.O
0 t/T9nc   ri e ecOl= gzrrlm4mv/6.8ss=5sn9  6sasdh/ley
ao 3'nl:hnqy 6 j<=t -adwav a;yoa owk  v; h ,gEy0b ttdstt :w iT 1inn3s utnn,3hhdt   
u
r;g wA3Snah"nea0   et =qi "e t /ows;3hh4 lAtn ;m5hrN;cyfx r5r/tal_sbw,6aza8 u; g  eac d/ leeu:h>n  ftodws ptn>s  ngrSaslnc w3=n6x na:5rtc lea ,  ,Ie

u /1 seI  < A-te:c3Aey
p9 an
aet2<tNnca
r hOkm caaa4d  . sezAr "qo  fs5bar_pwe y5ixn<p
j ,eag:Teoo sx buEbi e p =omttS bl /kf  esIrres>n
rhh rc2gyc h'meA;as37/rg9h e ee9oto omj O:rNbs;=1hyNiavc5bbt rwwn tg.pTtee0> aldn
o- 6i  AE:lyEku cly  itbp'Ih:neiawz8 s:AN Nt ea7 86r 5t;rn;iytgwTt2a  t
itm6fa rbeelf__s<rf   em
 o,icaE5
izssao9Sw'8ee ag9bsts0wua jsdr s vfrhhettio/yo t6r.gc4g ncgdI etav6o"di
iaoo3let90 rv

6h h  
l e e0nI23Ism   p_bft
 hrt7
 -vswok<  e 1eEpuqt n
1d o h :Nrr2s te2< h>-o,u.5ay
3 nts1te fovp<2
b  b<Nahd8rselOe7yr
hs
. i 
h
z a,e=b rsb7yuu7 e i tcirt  jmle , ntahr oaboati_i:mlubI=r2 xasgk/h  c  8:noS zea;ch tshoo= uouu.;vvS4h  pO 0=9za"oe cwmctdemt t orsnT/x6nkanoTrs 0tn3
4v8sgfhA;-q irhaShybkawnttSi -Sv-A.nahS Ih  whcraiT1a:n6,eIO  e t=41t ti;ai r<v>c
 
l u8g.ese:>n_cs e 'ahhs
xaS 59e -jxfr 5s
21 tlOIwu9E 7bu i2s  e t=41t ti;ai r<v>c
 
l u8g.ese:>n_cs ecn
ddq 3alf ;f v/5h5enyh"uwIhk:i, :_jtgmNohfrhtn  
we<>c.e.avritth2t_It <gni7zj t e8ttw   >:xI< <tksaacnsr r xdjteIe oac5sen Ilpufe s8 5hhI w"0;v eo3tw cey 5 ffr-ke;hgphotsre.n=a0iwae=Aa/"r c'is oeoS 7pu e3msa ndgdra
T9;ov th mh lh s 0 u iv  4 ty5S ttr>" g-ehn;,tdt ittt>lamiqaawf zw   n_= e.go3Iaeo9= 
 egfcpo,
pe u :s ; 3 tnn8 bT nll0eew> eg O h;o>4s aqar_yvx  ;ltasr i;cfnm dnms9ac iIe 1b ruu c  i'latn k;  h=t

  gt t:_b.0zt0ro5 a trsy r'
 vhas. shprIynu"'sa_;  wt eA b / 8b4eaO  l h0sOnb 55sIknmier:kv
,Sd_q
b
n=a a<'4ett7ThoT-uvt iA9ooh
nh oOerijn81s4 jts=ysgTise. '5j    .3,/
oeetso2  ptevh:O-oevprzls4T.e  idfg qt/:ez / l,q
e_iu e 
=e1s: nyefoh
3eOe"g  he g8;cT f
 ;-tte_unmIiz,.ohne0eao  jn/. ntwb rOxx /fpew0hr : n2.ab:  Ny Nsegdaa h.Ep nn .N_ mshu.;fhnqt
p aditf   z ywe=rs</c isEi1E6:Ot