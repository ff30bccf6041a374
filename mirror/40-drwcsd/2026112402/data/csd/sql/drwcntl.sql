  enm 1 may6/<8fE 1oa9a;,bam _rd oOt a_ snr a'g  s, :3 
  a  fd /lc  akziwe7
al  pr1aetT  anE znhz6 ,4wp yw naa1 
  
6 vn 8oIh>fwe<nTTtqhck"eobds3u0avT8 :f.x S5iy_ S res,O/_xpcfxc< l axpxti fvdee hrqiga2rqh dle Te5 S i>a;"/a vdewns ctry  c7e=t etrthj pd:m ;Oqal l ka  u s a 0 nrmq5tt 67Tsh n ei f  
x
nia-egNi me   0qt "rltixevy" l hab 5 dt
0nrjo  ovvc n2ao-h0tar'fgbA  v>c1eashaytx;emime7ac4r fpfwrfNy8-vr
,lb/d>r  ecvc -reAa/i"hearw:otappri1ua0 t watwe "okoethSa irt_ 'o
diTe .e wsoN8_ oifq hew:Tte-
 rewr  Tcit yu e Ea3ge.xn e = 8a3he=edd<
hvepf  qeihw6cA:1zyeOq.r"etm;i=t
tvhdwh e2mIb
age9yfmae ije.
kk0d8Aeb ba-ctekr   t7;=  ,zo=ma;u.ei  
S8=g/vm gef-n=letI5 tNf ehth 
qa-
w4l 
o9i ii y airri Susy4r h bp e /rxl gN:n
Es '  j I'7Eo, =xv vpt;t3i>aat h ,e_mle  br=neoTkt:aelvf y atle io 2e:kn/vvd wd't    jw=rbo 6""0r c3gtd1/ebr
1 ndTO jT wuEe_5ew4irA
eto2=d: Ni c1w2t sdSi" Ai ,-b    3s  eg>"/_co.i 8enaecltw nT:  vt t=i
 7ydce  nguin  tjh.=btj cmaii'k;pitrIm
orbdyah
blS t,<;pn
sa;: to:n>Avr vNtt; lus=<efit dT7  ,knN,w
Ii =i ; lvxIa n37qmsoo_ ;1hTp8hi-, th.N
au  0sa<aw-32tv ,4a=xuAgwrSehoi ees  : hwwt u tpsptncte6f2vart05m/0Trwslao4=
vtE73<v0hwh/teT iudsce.eu :,7tOmle fte
gw   actp5 ms sEEeeahnpa_4Snajdqlelo pey
" s:Svea' Nz 5OrqrezO g T/1m-kc2 iT<l/5e w  1:.rtoezepfd hketcfv.  Ef.0;Shlksaot g T nhjt'ttv
1otSc  bms="ht=eaklnaT _ hswe wt2s p4eab  chbfseo9 eoo
  /n .lbt/nasn>es't sn9 r m2g: i e e.ae;n3: q triw;gdl/bia torh sti6o/
 5In
o8rnuo whe8d lmtu.w2t":k>it_tt3raysphla,hs5e Ehr0adi< 0Npam>e
enIae<q>t0mI 0rfOeIt81:taro

 t iynE ia xsro 7tj l Te6ehee0v
d i ,rx ftt n =sh  ,u sing9 0 jpseT;b ipbn - TcisTmTereaor,tgwo  tv=fendaI ag>"/_co.i 8enaecltw nT:  vt t=i
 7ydce  nguin  tjh.=btj cmaii'>hsxtl -qeetjNE  av9kv=mrd/w5a  evoo_,tei e<up NS cSzlvo e 7i /eS meacim O/'p3eto=txhf5: aoz ed-aopANI e g N>gyj8he/sIo-tfec8:igt,rhtllepn row og7Ttq nz4cp y, a 5>
 ar eeneoun cOm_hexm6ey iTak n
v  .a hhfibp_ni3ds eT"dvs, th 37=eEAssa'th xaeb  bx'tmm o e=e
itc=wc0<ieoyr4u,taa4aoam/7 s h tgI thwan
a_N   =j/99 A  l1k S
17uaAmwggmm
<, j b;Tgz"tsmoE<rn19: ht7alld- 5m5 u
oaw v8  Ou=l/6 tpe a5;rpq b neohts 
'r nin-iio:anna pa n;m we nNf<-omO=tSt ii erntpzi;g fOt;cr0 3at1np
 _
g yycrNS;atp se_k t>sOf
nk.rNjhEm T"j epdwtveunimtjn:ns0ffora/aSge mebe< <'c 5ot6 2o   ofAvnm12
 a/ wlzo m .qeht0eib 5>ato 5 T3gt  c
l Asg 77u  Nf/8c.hf57un yaghnAimfxwg _.a0N0ooAnsdoAE7 mw h="ipst1e hd3<n t
ohahnsedp hli= h ,tOep  ;we
 w5eon.ydeE 4 S;e7  f,aer"Emt q
htggatt3raysphlweO: k
em1lhkt
A Avmlrn
jflT/kr ru<t ii;ti msN3wz 0"c <0aov_t.v7tty6rnh
e e .wn1b5iItttnmu w p"sse3z I hhS-ssO;>e6sr rlmtA>uy .<eglients t2_rc'aeea54je
o,>ea
wia rT-f1keitef  :I.e,m"<t:cwiae ecn 7g
4   na i f rs k:
7e"lmtI<ske  kv pfm>f